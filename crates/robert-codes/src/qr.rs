//! QR codes of a code's deep link, as PNG or SVG.

use std::fmt::Write as _;

use qrcode::{Color, EcLevel, QrCode};

use crate::lots::fill_url_template;

/// Modules of quiet zone around the symbol (the standard's minimum).
pub const QUIET_ZONE: usize = 4;

/// QR failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QrError {
    /// The data does not fit in a QR code.
    #[error("data too long for a QR code")]
    TooLong,
    /// PNG encoding failed.
    #[error("PNG encoding failed: {0}")]
    Png(String),
}

/// A QR symbol: `width × width` modules, `true` = dark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrMatrix {
    width: usize,
    dark: Vec<bool>,
}

impl QrMatrix {
    /// Encodes `data` with error-correction level M.
    pub fn encode(data: &str) -> Result<Self, QrError> {
        let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M)
            .map_err(|_| QrError::TooLong)?;
        Ok(Self {
            width: code.width(),
            dark: code
                .to_colors()
                .into_iter()
                .map(|c| c == Color::Dark)
                .collect(),
        })
    }

    /// Modules per side, without quiet zone.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Whether module (`x`, `y`) is dark.
    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.width && y < self.width && self.dark[y * self.width + x]
    }

    /// Horizontal runs of dark modules: `(x, y, length)`.
    pub fn dark_runs(&self) -> Vec<(usize, usize, usize)> {
        let mut runs = Vec::new();
        for y in 0..self.width {
            let mut x = 0;
            while x < self.width {
                if self.is_dark(x, y) {
                    let start = x;
                    while x < self.width && self.is_dark(x, y) {
                        x += 1;
                    }
                    runs.push((start, y, x - start));
                } else {
                    x += 1;
                }
            }
        }
        runs
    }

    /// PNG with `module_px` pixels per module and the quiet zone.
    pub fn to_png(&self, module_px: u32) -> Result<Vec<u8>, QrError> {
        let m = module_px.max(1);
        let side_modules =
            u32::try_from(self.width + 2 * QUIET_ZONE).map_err(|_| QrError::TooLong)?;
        let side = side_modules * m;
        let q = u32::try_from(QUIET_ZONE).unwrap_or(4);
        let img = image::GrayImage::from_fn(side, side, |px, py| {
            let (mx, my) = (px / m, py / m);
            let dark = mx >= q
                && my >= q
                && self.is_dark(
                    usize::try_from(mx - q).unwrap_or(usize::MAX),
                    usize::try_from(my - q).unwrap_or(usize::MAX),
                );
            image::Luma([if dark { 0 } else { 255 }])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png)
            .map_err(|e| QrError::Png(e.to_string()))?;
        Ok(out.into_inner())
    }

    /// SVG with `module_px` user units per module, the quiet zone and a title.
    pub fn to_svg(&self, module_px: u32, title: &str) -> String {
        let m = module_px.max(1);
        let side = (self.width + 2 * QUIET_ZONE) as u64 * u64::from(m);
        let mut path = String::new();
        for (x, y, len) in self.dark_runs() {
            let _ = write!(
                path,
                "M{} {}h{}v1h-{}z",
                x + QUIET_ZONE,
                y + QUIET_ZONE,
                len,
                len
            );
        }
        let vb = self.width + 2 * QUIET_ZONE;
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{side}\" height=\"{side}\" \
             viewBox=\"0 0 {vb} {vb}\" shape-rendering=\"crispEdges\" role=\"img\">\
             <title>{}</title><rect width=\"{vb}\" height=\"{vb}\" fill=\"#fff\"/>\
             <path fill=\"#000\" d=\"{path}\"/></svg>\n",
            crate::portal::html::escape(title)
        )
    }
}

/// The deep link for `code` from a `{code}` template.
pub fn deep_link(template: &str, code: &str) -> String {
    fill_url_template(template, code, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_decodes_back() {
        let url = deep_link(
            "https://bonjour.tousanticovid.gouv.fr/app/code/{code}",
            "AB12CD",
        );
        assert_eq!(url, "https://bonjour.tousanticovid.gouv.fr/app/code/AB12CD");
        let png = QrMatrix::encode(&url).unwrap().to_png(4).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_luma8();
        let mut prepared = rqrr::PreparedImage::prepare(img);
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1);
        let (_, content) = grids[0].decode().unwrap();
        assert_eq!(content, url);
    }

    #[test]
    fn svg_has_runs_and_title() {
        let m = QrMatrix::encode("HELLO").unwrap();
        let svg = m.to_svg(8, "Code <x>");
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains("<title>Code &lt;x&gt;</title>"));
        let runs = m.dark_runs();
        let dark: usize = runs.iter().map(|r| r.2).sum();
        let expected = (0..m.width())
            .flat_map(|y| (0..m.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| m.is_dark(x, y))
            .count();
        assert_eq!(dark, expected);
        assert_eq!(svg.matches('z').count(), runs.len());
    }
}
