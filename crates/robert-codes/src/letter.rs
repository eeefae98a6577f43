//! The one-page PDF a laboratory attaches to a positive result: the FAQ's
//! wording, the QR code of the deep link and the code printed under it.
//!
//! The PDF is written by hand (PDF 1.4, one page, the standard Helvetica and
//! Courier fonts in WinAnsiEncoding, the QR code drawn as vector rectangles),
//! so it is small, deterministic and needs no font or image files.

use crate::qr::{QUIET_ZONE, QrError, QrMatrix};

/// Letter language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    /// French (default: patients in France).
    #[default]
    French,
    /// English.
    English,
}

/// What goes on the letter.
#[derive(Debug, Clone)]
pub struct Letter<'a> {
    /// The code, printed under the QR code.
    pub code: &'a str,
    /// The deep link encoded in the QR code.
    pub url: &'a str,
    /// Optional "valid until" text (already formatted, Paris time).
    pub valid_until: Option<&'a str>,
    /// Language.
    pub language: Language,
}

const PAGE_W: f64 = 595.28;
const PAGE_H: f64 = 841.89;
const MARGIN: f64 = 64.0;

struct Texts {
    title: &'static str,
    intro: &'static str,
    no_data: &'static str,
    code_label: &'static str,
    valid_until: &'static str,
    footer: &'static str,
}

fn texts(lang: Language) -> Texts {
    match lang {
        Language::French => Texts {
            title: "Déclaration dans l'application TousAntiCovid",
            intro: "Si vous êtes utilisateur de l'application TousAntiCovid (disponible sur les \
                    magasins d'applications mobiles les plus courants), vous pouvez vous déclarer \
                    dans l'application en scannant le QR code ci-dessous ou en saisissant le code \
                    correspondant situé sous l'image.",
            no_data: "Ces éléments ne contiennent aucune donnée vous concernant.",
            code_label: "Code à saisir :",
            valid_until: "Code à usage unique, valable jusqu'au",
            footer: "Ce code a été tiré au hasard, indépendamment de toute information \
                     personnelle : aucun lien ne peut être établi entre ce code et vous.",
        },
        Language::English => Texts {
            title: "Reporting in the TousAntiCovid app",
            intro: "If you use the TousAntiCovid app (available from the most common mobile app \
                    stores), you can report in the app by scanning the QR code below or by typing \
                    the code printed under it.",
            no_data: "These items contain no data about you.",
            code_label: "Code to type:",
            valid_until: "Single-use code, valid until",
            footer: "This code was drawn at random, independently of any personal information: \
                     nothing links this code to you.",
        },
    }
}

/// Encodes text for a WinAnsi (cp1252) PDF string literal, escaped.
fn pdf_string(s: &str) -> Vec<u8> {
    let mut out = vec![b'('];
    for c in s.chars() {
        let b = match c {
            '(' | ')' | '\\' => {
                out.push(b'\\');
                u8::try_from(u32::from(c)).unwrap_or(b'?')
            }
            ' '..='~' => u8::try_from(u32::from(c)).unwrap_or(b'?'),
            '\u{a0}'..='\u{ff}' => u8::try_from(u32::from(c)).unwrap_or(b'?'),
            '€' => 0x80,
            '…' => 0x85,
            '–' => 0x96,
            '—' => 0x97,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            'œ' => 0x9c,
            'Œ' => 0x8c,
            _ => b'?',
        };
        out.push(b);
    }
    out.push(b')');
    out
}

/// Greedy word wrap to `max_chars` characters per line.
fn wrap(text: &str, max_chars: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > max_chars {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

struct Content {
    ops: Vec<u8>,
}

impl Content {
    fn raw(&mut self, s: &str) {
        self.ops.extend_from_slice(s.as_bytes());
    }

    /// Text at (x, y) in font `font` (F1 Helvetica, F2 Helvetica-Bold, F3 Courier-Bold).
    fn text(&mut self, font: &str, size: f64, x: f64, y: f64, s: &str) {
        self.raw(&format!("BT /{font} {size:.1} Tf {x:.2} {y:.2} Td "));
        let enc = pdf_string(s);
        self.ops.extend_from_slice(&enc);
        self.raw(" Tj ET\n");
    }

    /// Wrapped paragraph; returns the y below it.
    fn paragraph(&mut self, font: &str, size: f64, y: f64, s: &str) -> f64 {
        // Helvetica averages about half an em per character: 0.55 em keeps lines inside.
        let max_chars = ((PAGE_W - 2.0 * MARGIN) / (size * 0.55)) as usize;
        let mut y = y;
        for line in wrap(s, max_chars.max(10)) {
            self.text(font, size, MARGIN, y, &line);
            y -= size * 1.45;
        }
        y
    }

    /// Text centred on the page in Courier (0.6 em per character).
    fn centered_mono(&mut self, size: f64, y: f64, s: &str) {
        let width = size * 0.6 * s.chars().count() as f64;
        self.text("F3", size, (PAGE_W - width) / 2.0, y, s);
    }
}

/// Renders the letter as PDF bytes.
pub fn render(letter: &Letter<'_>) -> Result<Vec<u8>, QrError> {
    let t = texts(letter.language);
    let qr = QrMatrix::encode(letter.url)?;
    let mut c = Content { ops: Vec::new() };

    let mut y = PAGE_H - MARGIN - 10.0;
    c.text("F2", 17.0, MARGIN, y, t.title);
    y -= 36.0;
    y = c.paragraph("F1", 11.5, y, t.intro);
    y -= 4.0;
    c.text("F2", 11.5, MARGIN, y, t.no_data);
    y -= 24.0;

    // QR code: about 220 pt wide with its quiet zone, centred.
    let modules = qr.width() + 2 * QUIET_ZONE;
    let module = (220.0 / modules as f64).max(2.0);
    let side = module * modules as f64;
    let x0 = (PAGE_W - side) / 2.0;
    let top = y;
    c.raw("q 0 g\n");
    for (x, row, len) in qr.dark_runs() {
        let rx = x0 + (x + QUIET_ZONE) as f64 * module;
        let ry = top - (row + QUIET_ZONE + 1) as f64 * module;
        c.raw(&format!(
            "{rx:.3} {ry:.3} {:.3} {module:.3} re\n",
            len as f64 * module
        ));
    }
    c.raw("f Q\n");
    y = top - side - 22.0;

    c.text("F1", 10.5, MARGIN, y, t.code_label);
    y -= 26.0;
    let code_size = if letter.code.chars().count() > 20 {
        15.0
    } else {
        26.0
    };
    c.centered_mono(code_size, y, letter.code);
    y -= 30.0;
    if let Some(until) = letter.valid_until {
        c.text(
            "F1",
            10.5,
            MARGIN,
            y,
            &format!("{} {until}.", t.valid_until),
        );
        y -= 24.0;
    }
    let _ = c.paragraph("F1", 9.5, y.min(MARGIN + 60.0), t.footer);

    Ok(assemble(&c.ops, t.title))
}

/// Writes the PDF objects, cross-reference table and trailer.
fn assemble(content: &[u8], title: &str) -> Vec<u8> {
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] \
             /Resources << /Font << /F1 4 0 R /F2 5 0 R /F3 6 0 R >> >> /Contents 7 0 R >>"
        )
        .into_bytes(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>"
            .to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier-Bold /Encoding /WinAnsiEncoding >>"
            .to_vec(),
    ];
    let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
    stream.extend_from_slice(content);
    stream.extend_from_slice(b"\nendstream");
    objects.push(stream);
    let mut info = b"<< /Producer (robert-codes) /Title ".to_vec();
    info.extend_from_slice(&pdf_string(title));
    info.extend_from_slice(b" >>");
    objects.push(info);

    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, obj) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(obj);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R /Info {} 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1,
            objects.len()
        )
        .as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn winansi_strings_are_escaped() {
        assert_eq!(pdf_string("a(b)\\é’"), b"(a\\(b\\)\\\\\xe9\x92)".to_vec());
        assert_eq!(pdf_string("日"), b"(?)".to_vec());
    }

    #[test]
    fn wraps_on_words() {
        assert_eq!(wrap("aa bb cc dd", 5), ["aa bb", "cc dd"]);
        assert_eq!(wrap("", 5), Vec::<String>::new());
    }

    #[test]
    fn xref_offsets_point_at_objects() {
        let pdf = render(&Letter {
            code: "AB12CD",
            url: "https://x/app/code/AB12CD",
            valid_until: None,
            language: Language::French,
        })
        .unwrap();
        let text = String::from_utf8_lossy(&pdf).to_string();
        let start: usize = text
            .rsplit("startxref\n")
            .next()
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(pdf[start..].starts_with(b"xref"));
        let tail = String::from_utf8(pdf[start..].to_vec()).unwrap();
        let entries: Vec<&str> = tail.lines().skip(3).take(8).collect();
        assert_eq!(entries.len(), 8);
        for (i, e) in entries.iter().enumerate() {
            let off: usize = e[..10].parse().unwrap();
            assert!(
                pdf[off..].starts_with(format!("{} 0 obj", i + 1).as_bytes()),
                "object {}",
                i + 1
            );
        }
    }
}
