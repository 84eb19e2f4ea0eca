//! Product pictures: `[[product]] image = "cola.png"` (PNG, JPEG or SVG). A picture is read,
//! decoded and scaled to fit [`MAX_PX`] once, when the config is loaded; the tiles and the
//! payment screen share that one bitmap. A missing, oversized or undecodable file is a
//! config error at the product's line, so a typo shows at `check-config`, not as a blank
//! tile in front of a customer.

use std::path::Path;

/// The largest side of a stored picture, in pixels: the biggest tile's picture area.
pub const MAX_PX: u32 = 240;
/// The largest picture file read: a photo for a 240 px tile needs far less.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// The largest raster picture decoded (a small file may still claim a huge size).
const MAX_DECODE_PX: u32 = 4096;

/// A decoded, scaled picture: premultiplied RGBA, row by row.
#[derive(Clone, PartialEq, Eq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub rgba_premultiplied: Vec<u8>,
}

impl std::fmt::Debug for Picture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Picture({}x{})", self.width, self.height)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: String },
    #[error("{path} is not a PNG, JPEG or SVG picture this machine can show: {reason}")]
    Decode { path: String, reason: String },
}

/// Reads and decodes the picture at `path` (by its extension: .svg, or PNG/JPEG by content).
pub fn load(path: &Path) -> Result<Picture, PictureError> {
    let shown = path.display().to_string();
    let read_err = |source| PictureError::Read {
        path: shown.clone(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len > MAX_FILE_BYTES {
        return Err(PictureError::TooLarge { path: shown });
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    let svg = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    decode(&bytes, svg).map_err(|reason| PictureError::Decode {
        path: shown,
        reason,
    })
}

/// Decodes `bytes` (SVG when `svg`, else PNG or JPEG) and scales it to fit [`MAX_PX`].
pub fn decode(bytes: &[u8], svg: bool) -> Result<Picture, String> {
    if svg {
        decode_svg(bytes)
    } else {
        decode_raster(bytes)
    }
}

/// The size that fits `w`x`h` (at least 1x1) inside a [`MAX_PX`] square, keeping its
/// shape; never larger than it was, never 0.
fn fit(w: u32, h: u32) -> (u32, u32) {
    let (w, h) = (w.max(1), h.max(1));
    let scale = (MAX_PX as f32 / w.max(h) as f32).min(1.0);
    let px = |v: u32| ((v as f32 * scale).round() as u32).clamp(1, MAX_PX);
    (px(w), px(h))
}

fn decode_svg(bytes: &[u8]) -> Result<Picture, String> {
    use resvg::{tiny_skia, usvg};
    let tree =
        usvg::Tree::from_data(bytes, &usvg::Options::default()).map_err(|e| e.to_string())?;
    let size = tree.size();
    if !(size.width() >= 1.0 && size.height() >= 1.0) {
        return Err("it has no size".into());
    }
    // An SVG is drawn at the size it is shown, small ones scaled up too.
    let scale = MAX_PX as f32 / size.width().max(size.height());
    let (w, h) = (
        ((size.width() * scale).round() as u32).clamp(1, MAX_PX),
        ((size.height() * scale).round() as u32).clamp(1, MAX_PX),
    );
    let mut pixmap = tiny_skia::Pixmap::new(w, h).ok_or("it has no size")?;
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    Ok(Picture {
        width: w,
        height: h,
        rgba_premultiplied: pixmap.take(),
    })
}

fn decode_raster(bytes: &[u8]) -> Result<Picture, String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DECODE_PX);
    limits.max_image_height = Some(MAX_DECODE_PX);
    limits.max_alloc = Some(128 * 1024 * 1024);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| e.to_string())?;
    let (w, h) = fit(img.width(), img.height());
    let img = if (w, h) == (img.width(), img.height()) {
        img
    } else {
        img.resize_exact(w, h, image::imageops::FilterType::Triangle)
    };
    let mut rgba = img.to_rgba8().into_raw();
    for px in rgba.chunks_exact_mut(4) {
        let a = u16::from(px[3]);
        for c in &mut px[..3] {
            *c = ((u16::from(*c) * a + 127) / 255) as u8;
        }
    }
    Ok(Picture {
        width: w,
        height: h,
        rgba_premultiplied: rgba,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQUARE: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="48" height="24"><rect width="48" height="24" fill="#ff0000"/></svg>"##;

    #[test]
    fn an_svg_is_drawn_to_fit_the_tile_keeping_its_shape() {
        let p = decode(SQUARE.as_bytes(), true).unwrap();
        assert_eq!((p.width, p.height), (MAX_PX, MAX_PX / 2));
        assert_eq!(&p.rgba_premultiplied[..4], &[255, 0, 0, 255], "red, opaque");
        assert_eq!(format!("{p:?}"), "Picture(240x120)");
    }

    #[test]
    fn a_png_is_scaled_down_once_and_garbage_is_refused() {
        let mut png = Vec::new();
        let img = image::RgbaImage::from_pixel(960, 480, image::Rgba([0, 0, 255, 128]));
        image::DynamicImage::ImageRgba8(img)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let p = decode(&png, false).unwrap();
        assert_eq!((p.width, p.height), (MAX_PX, MAX_PX / 2));
        assert_eq!(
            &p.rgba_premultiplied[..4],
            &[0, 0, 128, 128],
            "premultiplied"
        );
        assert!(decode(b"not a picture", false).is_err());
        assert!(decode(b"<svg", true).is_err());
        assert!(
            decode(&png[..png.len() / 2], false).is_err(),
            "a cut-off file"
        );
    }

    #[test]
    fn a_missing_or_huge_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(&dir.path().join("cola.png")).unwrap_err();
        assert!(e.to_string().contains("cola.png"), "{e}");
        let big = dir.path().join("big.png");
        std::fs::write(&big, vec![0u8; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert!(matches!(load(&big), Err(PictureError::TooLarge { .. })));
    }
}
