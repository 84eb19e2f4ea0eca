//! The payment QR: `LIGHTNING:` + the upper-cased BOLT11. Upper case lets the QR use its
//! alphanumeric mode, so the code has fewer, larger modules and scans faster off a small
//! screen. Rasterised here to a greyscale bitmap at a whole number of pixels per module, so
//! the UI shows it pixel-exact and any thread can make it.

use qrcode::{Color, EcLevel, QrCode};

/// The text a wallet reads from the QR.
pub fn payment_uri(bolt11: &str) -> String {
    format!("LIGHTNING:{}", bolt11.to_ascii_uppercase())
}

/// A square greyscale image: 0 is black, 255 white.
#[derive(Clone, PartialEq, Eq)]
pub struct QrBitmap {
    pub size: u32,
    pub pixels: Vec<u8>,
}

impl std::fmt::Debug for QrBitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QrBitmap({}x{})", self.size, self.size)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot encode the payment QR: {0}")]
pub struct QrError(String);

/// Quiet zone around the code, in modules (the QR spec asks for 4).
const QUIET: u32 = 4;

/// Renders `text` as large as fits in `max_px` square, whole pixels per module.
pub fn render(text: &str, max_px: u32) -> Result<QrBitmap, QrError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| QrError(e.to_string()))?;
    let modules = code.width() as u32;
    let total = modules + 2 * QUIET;
    let scale = (max_px / total).max(1);
    let size = total * scale;
    let mut pixels = vec![255u8; (size * size) as usize];
    let colors = code.to_colors();
    for my in 0..modules {
        for mx in 0..modules {
            if colors[(my * modules + mx) as usize] == Color::Dark {
                for dy in 0..scale {
                    let y = (my + QUIET) * scale + dy;
                    let row = (y * size) as usize;
                    let x0 = ((mx + QUIET) * scale) as usize;
                    pixels[row + x0..row + x0 + scale as usize].fill(0);
                }
            }
        }
    }
    Ok(QrBitmap { size, pixels })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bmp: &QrBitmap) -> String {
        let s = bmp.size as usize;
        let mut img =
            rqrr::PreparedImage::prepare_from_greyscale(s, s, |x, y| bmp.pixels[y * s + x]);
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1);
        grids[0].decode().unwrap().1
    }

    #[test]
    fn the_qr_decodes_back_to_the_upper_case_lightning_uri() {
        let bolt11 = "lnbcrt21u1pjexample0000000000000000000000000000000000000000000000000000000000000000000000";
        let uri = payment_uri(bolt11);
        assert!(uri.starts_with("LIGHTNING:LNBCRT21U1"));
        let bmp = render(&uri, 340).unwrap();
        assert!(bmp.size <= 340 && bmp.size >= 200, "{}", bmp.size);
        assert_eq!(decode(&bmp), uri);
    }

    #[test]
    fn upper_case_makes_a_smaller_code() {
        let bolt11 = "lnbcrt21u1pj".to_string() + &"q".repeat(280);
        let upper = QrCode::new(payment_uri(&bolt11)).unwrap().width();
        let lower = QrCode::new(format!("lightning:{bolt11}")).unwrap().width();
        assert!(upper < lower, "{upper} vs {lower}");
    }
}
