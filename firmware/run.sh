#!/bin/sh
# Cargo runner: QEMU for the `qemu` binary, probe-rs for the `pico` one.
set -e
case "$(basename "$1")" in
  pico) exec probe-rs run --chip RP2040 "$@" ;;
  *) exec qemu-system-arm -machine mps2-an385 -nographic -serial pty \
        -semihosting-config enable=on,target=native -kernel "$@" ;;
esac
