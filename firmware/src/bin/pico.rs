//! Raspberry Pi Pico board layer: USB CDC serial (the host sees /dev/ttyACM*), the RP2040's
//! 1 MHz timer for the clock, defmt over RTT (probe-rs) for logs.
#![no_std]
#![no_main]

use defmt_rtt as _;
use firmware::{App, Clock, Link, GROUPED_LEN};
use panic_probe as _;
use rp2040_hal::{self as hal, pac};
use static_cell::StaticCell;
use usb_device::{class_prelude::UsbBusAllocator, prelude::*, UsbError};
use usbd_serial::SerialPort;

/// Second-stage bootloader for the Pico's W25Q080 flash.
#[allow(unsafe_code)] // `link_section` / `no_mangle` only: where the boot ROM looks for it.
#[link_section = ".boot2"]
#[no_mangle]
#[used]
pub static BOOT2_FIRMWARE: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

/// The Pico's crystal.
const XOSC_HZ: u32 = 12_000_000;
/// A reply the host does not read within this time is dropped (host gone): never hang.
const WRITE_TIMEOUT_US: u64 = 1_000_000;

struct Usb {
    device: UsbDevice<'static, hal::usb::UsbBus>,
    serial: SerialPort<'static, hal::usb::UsbBus>,
    timer: hal::Timer,
}

impl Link for Usb {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        self.device.poll(&mut [&mut self.serial]);
        self.serial.read(buf).unwrap_or(0)
    }

    fn write_all(&mut self, mut bytes: &[u8]) {
        let start = self.timer.get_counter().ticks();
        while !bytes.is_empty() {
            self.device.poll(&mut [&mut self.serial]);
            match self.serial.write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(UsbError::WouldBlock) => {}
                Err(_) => return,
            }
            if self.timer.get_counter().ticks() - start > WRITE_TIMEOUT_US {
                defmt::warn!("host not reading: reply dropped");
                return;
            }
        }
    }
}

struct TimerClock(hal::Timer);

impl Clock for TimerClock {
    fn now_us(&mut self) -> u32 {
        self.0.get_counter().ticks() as u32
    }
}

static USB_BUS: StaticCell<UsbBusAllocator<hal::usb::UsbBus>> = StaticCell::new();
static APP: StaticCell<App> = StaticCell::new();
/// The CNN's convolution weights, re-laid at boot for the fast kernels.
static GROUPED: StaticCell<[i32; GROUPED_LEN]> = StaticCell::new();

#[hal::entry]
fn main() -> ! {
    let Some(mut pac) = pac::Peripherals::take() else { panic!("peripherals taken twice") };
    let mut watchdog = hal::Watchdog::new(pac.WATCHDOG);
    let Ok(clocks) = hal::clocks::init_clocks_and_plls(
        XOSC_HZ,
        pac.XOSC,
        pac.CLOCKS,
        pac.PLL_SYS,
        pac.PLL_USB,
        &mut pac.RESETS,
        &mut watchdog,
    ) else {
        panic!("clocks did not start")
    };
    let timer = hal::Timer::new(pac.TIMER, &mut pac.RESETS, &clocks);
    let bus = USB_BUS.init(UsbBusAllocator::new(hal::usb::UsbBus::new(
        pac.USBCTRL_REGS,
        pac.USBCTRL_DPRAM,
        clocks.usb_clock,
        true,
        &mut pac.RESETS,
    )));
    let serial = SerialPort::new(bus);
    let Ok(builder) = UsbDeviceBuilder::new(bus, UsbVidPid(0x16c0, 0x27dd))
        .strings(&[StringDescriptors::default()
            .manufacturer("qmedscan")
            .product("qmedscan classifier")
            .serial_number("1")])
        // 64-byte control packets (usb-device's default is 8, USB full speed allows 64): the
        // 9-byte configuration descriptor then comes in one packet, as rp2040js's USB CDC host
        // (CI's emulated Pico, `rp2040-emulator/`) needs.
        .and_then(|builder| builder.max_packet_size_0(64))
    else {
        panic!("USB descriptors")
    };
    let device = builder.device_class(usbd_serial::USB_CLASS_CDC).build();
    let mut usb = Usb { device, serial, timer };
    let mut clock = TimerClock(timer);
    let app = APP.init_with(|| App::new(GROUPED.init_with(|| [0; GROUPED_LEN])));
    defmt::info!("pico: serving on USB CDC");
    loop {
        app.poll(&mut usb, &mut clock);
    }
}
