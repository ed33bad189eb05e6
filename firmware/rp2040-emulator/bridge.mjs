// Runs the Pico firmware on an emulated RP2040 (rp2040js) and puts its USB CDC serial port on a
// pseudo-terminal (socat), where host tools open it as they would /dev/ttyACM0.
//
//   node bridge.mjs [--rtt FILE] [--timeout SECONDS] BOOTROM.bin FIRMWARE.elf
//
// stdout: `pty /dev/pts/N` once the device has enumerated, then `classified CYCLES INSTRUCTIONS`
//   for each classification (counted from `qmed_classify_begin` to `qmed_classify_end`).
// stdin: a line `reset` restarts the chip (as the Pico's RUN pin); the end of input stops.
// --rtt: the firmware's defmt log (RTT up channel 0), raw, for `defmt-print -e FIRMWARE.elf`.
// Any failure, and the --timeout watchdog, exit 1 with one line on stderr.

import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { RP2040, USBCDC } from 'rp2040js';

const FLASH = 0x10000000;
const RAM = 0x20000000;
const CYCLE_NANOS = 8; // clk_sys 125 MHz, as rp2040-hal's clock init sets it
const SLICE = 200_000; // instructions between looks at the host side (a few ms)
const ENUMERATION_NANOS = 3e9; // a device not enumerated after 3 emulated seconds is broken

function fail(message) {
  process.stderr.write(`rp2040js bridge: ${message}\n`);
  process.exit(1);
}
process.on('uncaughtException', (e) => fail(e.message));

const { values: opts, positionals } = parseArgs({
  options: { rtt: { type: 'string' }, timeout: { type: 'string' } },
  allowPositionals: true,
});

if (positionals.length !== 2) fail('usage: node bridge.mjs [--rtt FILE] [--timeout S] BOOTROM.bin FIRMWARE.elf');
const [bootromPath, elfPath] = positionals;
const rom = readFileSync(bootromPath);
if (rom.length !== 16384) fail(`${bootromPath}: ${rom.length} bytes, a boot ROM has 16384`);
const bootrom = new Uint32Array(rom.buffer.slice(rom.byteOffset, rom.byteOffset + rom.length));
const elf = readElf(readFileSync(elfPath), elfPath);
const marker = (name) => {
  const address = elf.symbols.get(name);
  if (address === undefined) fail(`${elfPath} has no symbol ${name}`);
  return address & ~1; // Thumb bit
};
const [begin, end] = [marker('qmed_classify_begin'), marker('qmed_classify_end')];
const rtt = elf.symbols.get('_SEGGER_RTT');
const rttFile = opts.rtt && openSync(opts.rtt, 'w');

if (opts.timeout) {
  const seconds = Number(opts.timeout);
  if (!(seconds > 0)) fail(`--timeout ${opts.timeout}: not a number of seconds`);
  setTimeout(() => fail(`watchdog: still running after --timeout ${seconds} s`), seconds * 1000).unref();
}

/** The PT_LOAD segments and the symbols of a 32-bit little-endian ELF. */
function readElf(bytes, path) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [u16, u32] = [(at) => v.getUint16(at, true), (at) => v.getUint32(at, true)];
  // DataView throws past the end; `subarray` would clamp, and load half a segment.
  const at = (from, len) => {
    if (len < 0 || from + len > bytes.length) throw new RangeError();
    return bytes.subarray(from, from + len);
  };
  try {
    if (v.getUint32(0) !== 0x7f454c46 || bytes[4] !== 1 || bytes[5] !== 1) throw new RangeError();
    const segments = [];
    for (let i = 0, ph = u32(28); i < u16(44); i++, ph += u16(42)) {
      if (u32(ph) === 1 /* PT_LOAD */ && u32(ph + 16) > 0) {
        segments.push({ paddr: u32(ph + 12), data: at(u32(ph + 4), u32(ph + 16)) });
      }
    }
    const symbols = new Map();
    const sh = (i) => u32(32) + i * u16(46);
    for (let i = 0; i < u16(48); i++) {
      if (u32(sh(i) + 4) !== 2 /* SHT_SYMTAB */) continue;
      const strings = u32(sh(u32(sh(i) + 24)) + 16);
      for (let entry = u32(sh(i) + 16); entry < u32(sh(i) + 16) + u32(sh(i) + 20); entry += 16) {
        const name = strings + u32(entry);
        symbols.set(new TextDecoder().decode(at(name, bytes.indexOf(0, name) - name)), u32(entry + 4));
      }
    }
    return { segments, symbols };
  } catch {
    fail(`${path} is not a 32-bit little-endian ELF, or is cut off`);
  }
}

// The host side: socat owns the pty and relays it through its stdin and stdout.
const socat = spawn('socat', ['-d', '-d', 'PTY,raw,echo=0', 'STDIO'], { stdio: ['pipe', 'pipe', 'pipe'] });
socat.on('error', (e) => fail(`socat: ${e.message} (Debian package socat)`));
socat.on('exit', (code) => {
  process.stderr.write(`rp2040js bridge: socat ended (${code}): the pty is closed\n`);
  stop();
});
let pty = null;
createInterface({ input: socat.stderr }).on('line', (line) => {
  pty ??= / PTY is (\S+)/.exec(line)?.[1];
  if (/ E /.test(line)) process.stderr.write(`${line}\n`);
});
let toDevice = Buffer.alloc(0);
socat.stdout.on('data', (bytes) => {
  toDevice = Buffer.concat([toDevice, bytes]);
  feed();
});

// rp2040js would log on stdout, which is ours. Its warnings and errors (a bad memory access, an
// unknown instruction) mean the firmware has gone astray: stop at the first, rather than flood
// the log. Except one: rp2040-hal clears USB registers rp2040js does not model.
const fatal = (component, message) => fail(`emulated chip (${component}): ${message}`);
const logger = {
  debug() {},
  info() {},
  warn: (component, message) => /^Unimplemented peripheral/.test(message) || fatal(component, message),
  error: fatal,
};

/** A fresh chip running the firmware, as after power-on or a reset. */
function boot() {
  const mcu = new RP2040();
  mcu.logger = logger;
  mcu.loadBootrom(bootrom);
  for (const { paddr, data } of elf.segments) {
    if (paddr < FLASH || paddr + data.length > FLASH + mcu.flash.length) {
      fail(`${elfPath}: a segment at 0x${paddr.toString(16)} is outside the flash`);
    }
    mcu.flash.set(data, paddr - FLASH);
  }
  mcu.core.PC = FLASH; // boot2, where the boot ROM jumps once it has found a valid flash
  mcu.onBreak = (code) => {
    drainRtt(mcu);
    fail(`the firmware stopped at BKPT/UDF ${code} (a panic: see the defmt log)`);
  };
  const cdc = new USBCDC(mcu.usbCtrl);
  const chip = { mcu, cdc, connected: false, armed: new Map(), instructions: 0, mark: null };
  // rp2040-hal arms its bulk OUT endpoint at bus reset, before USBCDC has read the descriptors
  // that name it; USBCDC would also answer an armed endpoint at once, with 0 bytes if it has
  // none. So: remember each arming, answer it once bytes are there.
  mcu.usbCtrl.onEndpointRead = (endpoint, size) => {
    chip.armed.set(endpoint, size);
    feed();
  };
  cdc.onDeviceConnected = () => {
    chip.connected = true;
    feed();
  };
  cdc.onSerialData = (bytes) => socat.stdin.write(bytes);
  return chip;
}

/** Hands queued host bytes to the firmware's armed bulk OUT endpoint. */
function feed() {
  const { mcu, cdc, armed, connected } = chip;
  const size = armed.get(cdc.outEndpoint);
  if (!connected || size === undefined || toDevice.length === 0) return;
  armed.delete(cdc.outEndpoint);
  mcu.usbCtrl.endpointReadDone(cdc.outEndpoint, toDevice.subarray(0, size));
  toDevice = toDevice.subarray(size);
}

/** Copies the firmware's new defmt bytes out of its RTT up buffer and marks them read. */
function drainRtt(mcu) {
  if (!rttFile || rtt === undefined) return;
  const word = (offset) => mcu.readUint32(rtt + offset);
  const [buffer, size, write] = [word(28), word(32), word(36)];
  let read = word(40);
  if (buffer < RAM || write >= size || read >= size) return; // not initialised yet
  while (read !== write) {
    const upTo = write > read ? write : size;
    writeSync(rttFile, mcu.sram.subarray(buffer - RAM + read, buffer - RAM + upTo));
    read = upTo % size;
  }
  mcu.writeUint32(rtt + 40, read);
}

/** Runs a slice of instructions, then yields to the host side. */
function run() {
  const { core, clock } = chip.mcu;
  let { instructions } = chip;
  for (let n = 0; n < SLICE; n++) {
    if (core.waiting) {
      clock.tick(clock.nanosToNextAlarm);
      continue;
    }
    // Cycles from the emulated clock, as the firmware's timer sees them (`core.cycles` also adds
    // 8 per hardware division on top of the instructions that wait for its result).
    const pc = core.PC;
    if (pc === begin) chip.mark = [clock.nanos, instructions];
    else if (pc === end && chip.mark) {
      console.log(`classified ${Math.round((clock.nanos - chip.mark[0]) / CYCLE_NANOS)} ${instructions - chip.mark[1]}`);
      chip.mark = null;
    }
    clock.tick(core.executeInstruction() * CYCLE_NANOS);
    instructions++;
  }
  chip.instructions = instructions;
  drainRtt(chip.mcu);
  if (!chip.connected && clock.nanos > ENUMERATION_NANOS) {
    fail(`the device did not enumerate on USB within ${ENUMERATION_NANOS / 1e9} emulated seconds`);
  }
  if (chip.connected && pty && !announced) {
    announced = true;
    console.log(`pty ${pty}`);
  }
  timer = setImmediate(run);
}

function stop() {
  clearImmediate(timer);
  socat.kill();
  drainRtt(chip.mcu);
  if (rttFile) closeSync(rttFile);
  process.exit(0);
}

createInterface({ input: process.stdin })
  .on('line', (line) => {
    if (line.trim() === '') return;
    if (line.trim() !== 'reset') return process.stderr.write(`rp2040js bridge: unknown command ${line}\n`);
    process.stderr.write('rp2040js bridge: reset\n');
    // Bytes the old chip had not read die with it, as in a real reset.
    toDevice = Buffer.alloc(0);
    chip = boot();
  })
  .on('close', stop);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

let chip = boot();
let announced = false;
let timer = setImmediate(run);
