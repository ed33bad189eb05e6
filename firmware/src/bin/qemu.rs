//! QEMU `-machine mps2-an385` board layer: CMSDK UART0 (polled) for the protocol, SysTick for
//! the clock, defmt over semihosting (QEMU's stdout) for logs.
//!
//! ```text
//! qemu-system-arm -machine mps2-an385 -nographic -serial pty \
//!     -semihosting-config enable=on,target=native -kernel target/thumbv6m-none-eabi/release/qemu
//! ```
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_rt::{entry, exception};
use defmt_semihosting as _;
use firmware::{App, Clock, Link, GROUPED_LEN};
use static_cell::StaticCell;

/// The AN385 FPGA image clocks the Cortex-M3 (and SysTick) at 25 MHz.
const CPU_HZ: u32 = 25_000_000;
const SYSTICK_RELOAD: u32 = 0x00FF_FFFF;

/// CMSDK APB UART, as QEMU models it (hw/char/cmsdk-apb-uart.c).
mod uart {
    #![allow(unsafe_code)]
    use core::ptr::{read_volatile, write_volatile};

    const DATA: usize = 0x00;
    const STATE: usize = 0x04;
    const CTRL: usize = 0x08;
    const BAUDDIV: usize = 0x10;
    const STATE_TX_FULL: u32 = 1 << 0;
    const STATE_RX_FULL: u32 = 1 << 1;
    const CTRL_TX_EN: u32 = 1 << 0;
    const CTRL_RX_EN: u32 = 1 << 1;

    /// UART0 of the AN385.
    pub struct Uart0(());

    impl Uart0 {
        const BASE: usize = 0x4000_4000;

        /// Enables transmitter and receiver. Only one exists: `main` calls this once.
        pub fn init() -> Self {
            let uart = Self(());
            uart.write(BAUDDIV, 16);
            uart.write(CTRL, CTRL_TX_EN | CTRL_RX_EN);
            uart
        }

        fn read(&self, offset: usize) -> u32 {
            // SAFETY: a 4-byte-aligned register of the UART, which this struct owns.
            unsafe { read_volatile((Self::BASE + offset) as *const u32) }
        }

        fn write(&self, offset: usize, value: u32) {
            // SAFETY: as in `read`.
            unsafe { write_volatile((Self::BASE + offset) as *mut u32, value) }
        }

        /// The received byte, if one is waiting.
        pub fn try_read(&mut self) -> Option<u8> {
            (self.read(STATE) & STATE_RX_FULL != 0).then(|| self.read(DATA) as u8)
        }

        /// Sends one byte, waiting for room.
        pub fn write_byte(&mut self, byte: u8) {
            while self.read(STATE) & STATE_TX_FULL != 0 {}
            self.write(DATA, u32::from(byte));
        }
    }
}

impl Link for uart::Uart0 {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        for slot in buf.iter_mut() {
            match self.try_read() {
                Some(byte) => *slot = byte,
                None => break,
            }
            n += 1;
        }
        n
    }

    fn write_all(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&b| self.write_byte(b));
    }
}

/// SysTick wraps every 2^24 cycles (0.67 s); its exception counts the wraps.
static SYSTICK_WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    // Only this handler writes: a load and a store (thumbv6m has no read-modify-write atomics).
    SYSTICK_WRAPS.store(SYSTICK_WRAPS.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

struct SysTickClock;

impl SysTickClock {
    fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(SYSTICK_RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Self
    }

    fn cycles(&mut self) -> u64 {
        loop {
            let wraps = SYSTICK_WRAPS.load(Ordering::Relaxed);
            let left = SYST::get_current();
            if SYSTICK_WRAPS.load(Ordering::Relaxed) == wraps {
                return u64::from(wraps) * u64::from(SYSTICK_RELOAD + 1) + u64::from(SYSTICK_RELOAD - left);
            }
        }
    }
}

impl Clock for SysTickClock {
    fn now_us(&mut self) -> u32 {
        (self.cycles() / u64::from(CPU_HZ / 1_000_000)) as u32
    }
}

static APP: StaticCell<App> = StaticCell::new();
/// The CNN's convolution weights, re-laid at boot for the fast kernels.
static GROUPED: StaticCell<[i32; GROUPED_LEN]> = StaticCell::new();

#[entry]
fn main() -> ! {
    let core = cortex_m::Peripherals::take().unwrap_or_else(|| fail("core peripherals taken twice"));
    let mut clock = SysTickClock::start(core.SYST);
    let mut uart = uart::Uart0::init();
    let app = APP.init_with(|| App::new(GROUPED.init_with(|| [0; GROUPED_LEN])));
    defmt::info!("qemu mps2-an385: serving on UART0");
    loop {
        app.poll(&mut uart, &mut clock);
    }
}

fn fail(why: &str) -> ! {
    defmt::error!("{}", why);
    cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic: {}", defmt::Display2Format(info));
    cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
