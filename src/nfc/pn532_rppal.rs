//! The PN532's buses on the Pi, through rppal: I2C (`/dev/i2c-N`, address 0x24) and SPI
//! (`/dev/spidevB.C`). rppal builds on every host, so this compiles everywhere and fails only
//! when opened where there is no such bus. Each transport adds its bus's own framing around
//! the PN532 frames of [`super::pn532`]: I2C's leading status byte, SPI's direction byte and
//! its least-significant-bit-first order.

use std::time::{Duration, Instant};

use rppal::i2c::I2c;
use rppal::spi::{Bus, Mode, SlaveSelect, Spi};

use super::pn532::{Pn532Transport, TransportError};

/// How often the ready flag is looked at while waiting.
const READY_POLL: Duration = Duration::from_millis(5);

/// A PN532 on I2C.
pub struct I2cTransport {
    i2c: I2c,
}

impl I2cTransport {
    pub fn open(bus: u8, address: u16) -> Result<I2cTransport, TransportError> {
        let mut i2c = I2c::with_bus(bus).map_err(TransportError::I2c)?;
        i2c.set_slave_address(address)
            .map_err(TransportError::I2c)?;
        Ok(I2cTransport { i2c })
    }
}

impl Pn532Transport for I2cTransport {
    fn write(&mut self, frame: &[u8]) -> Result<(), TransportError> {
        self.i2c.write(frame).map_err(TransportError::I2c)?;
        Ok(())
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<bool, TransportError> {
        let until = Instant::now() + timeout;
        loop {
            let mut status = [0u8; 1];
            // A busy PN532 may NAK its address: that is "not ready", not a failure.
            if self.i2c.read(&mut status).is_ok() && status[0] & 0x01 == 0x01 {
                return Ok(true);
            }
            if Instant::now() >= until {
                return Ok(false);
            }
            std::thread::sleep(READY_POLL);
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), TransportError> {
        // Every I2C read starts with the status byte again.
        let mut with_status = vec![0u8; buf.len() + 1];
        self.i2c
            .read(&mut with_status)
            .map_err(TransportError::I2c)?;
        buf.copy_from_slice(&with_status[1..]);
        Ok(())
    }
}

/// A PN532 on SPI (mode 0, 1 MHz; the module sends LSB first, the Pi's SPI cannot, so bits
/// are reversed here).
pub struct SpiTransport {
    spi: Spi,
}

const SPI_DATA_WRITE: u8 = 0x01;
const SPI_STATUS_READ: u8 = 0x02;
const SPI_DATA_READ: u8 = 0x03;

impl SpiTransport {
    pub fn open(bus: u8, chip_select: u8) -> Result<SpiTransport, TransportError> {
        let bus = match bus {
            0 => Bus::Spi0,
            1 => Bus::Spi1,
            2 => Bus::Spi2,
            3 => Bus::Spi3,
            4 => Bus::Spi4,
            5 => Bus::Spi5,
            6 => Bus::Spi6,
            n => return Err(TransportError::Other(format!("no SPI bus {n}"))),
        };
        let cs = match chip_select {
            0 => SlaveSelect::Ss0,
            1 => SlaveSelect::Ss1,
            2 => SlaveSelect::Ss2,
            n => return Err(TransportError::Other(format!("no SPI chip select {n}"))),
        };
        let spi = Spi::new(bus, cs, 1_000_000, Mode::Mode0).map_err(TransportError::Spi)?;
        Ok(SpiTransport { spi })
    }

    fn exchange(&mut self, out: &[u8]) -> Result<Vec<u8>, TransportError> {
        let out: Vec<u8> = out.iter().map(|b| b.reverse_bits()).collect();
        let mut back = vec![0u8; out.len()];
        self.spi
            .transfer(&mut back, &out)
            .map_err(TransportError::Spi)?;
        Ok(back.iter().map(|b| b.reverse_bits()).collect())
    }
}

impl Pn532Transport for SpiTransport {
    fn write(&mut self, frame: &[u8]) -> Result<(), TransportError> {
        let mut out = Vec::with_capacity(frame.len() + 1);
        out.push(SPI_DATA_WRITE);
        out.extend_from_slice(frame);
        self.exchange(&out)?;
        Ok(())
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<bool, TransportError> {
        let until = Instant::now() + timeout;
        loop {
            let back = self.exchange(&[SPI_STATUS_READ, 0x00])?;
            if back.get(1).is_some_and(|s| s & 0x01 == 0x01) {
                return Ok(true);
            }
            if Instant::now() >= until {
                return Ok(false);
            }
            std::thread::sleep(READY_POLL);
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), TransportError> {
        let mut out = vec![0u8; buf.len() + 1];
        out[0] = SPI_DATA_READ;
        let back = self.exchange(&out)?;
        buf.copy_from_slice(&back[1..]);
        Ok(())
    }
}
