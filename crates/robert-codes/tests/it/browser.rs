//! End to end in headless Chromium (WebDriver via chromedriver), at a phone's
//! width (390 px) and a desktop's (1280 px): log in with the keyboard,
//! generate a code, see it with its copy and print buttons and its QR code,
//! verify it through the API (valid, then invalid), log out. On every page
//! nothing may overflow horizontally and the key elements must be visible
//! inside the viewport. Screenshots go under `target/`.
//!
//! `portal_screenshots_for_the_docs` (ignored, run on demand) refreshes the
//! screenshots in `docs/portal/`:
//!
//! ```sh
//! cargo test -p robert-codes --test it portal_screenshots -- --ignored
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use fantoccini::error::CmdError;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};

use crate::support::*;

/// The two widths the portal is checked at: a phone (iPhone 12 to 15 CSS
/// pixels) and a desktop window, with their usual heights.
const WIDTHS: [(u32, u32); 2] = [(390, 844), (1280, 800)];

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PASSWORD: &str = "a very good password";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A headless Chromium driven over WebDriver; `None` (after saying so, or
/// failing under `ROBERT_TEST_REQUIRE_TOOLS=1`) when it is not installed.
struct Browser {
    client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Option<Self> {
        let (chromium, driver) = (Path::new(CHROMIUM), Path::new(CHROMEDRIVER));
        if !chromium.exists() || !driver.exists() {
            skip_or_fail(
                "ROBERT_TEST_REQUIRE_TOOLS",
                "skipped: chromium or chromedriver not installed (apt-get install chromium chromium-driver)",
            );
            return None;
        }
        let port = free_port();
        let driver = Driver(
            Command::new(driver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let (w, h) = WIDTHS[0];
        let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--hide-scrollbars", format!("--window-size={w},{h}"),
                    "--force-device-scale-factor=1", "--lang=fr-FR",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }))
        .unwrap();
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("WebDriver session");
        Some(Self {
            client,
            _driver: driver,
            _profile: profile,
        })
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// What the layout check measured on one page.
#[derive(Debug)]
struct Layout {
    inner_width: f64,
    scroll_width: f64,
    /// Elements among those asked for that are missing, hidden, empty or
    /// not entirely inside the viewport's width.
    bad: Vec<String>,
}

/// Measures the page: the document's width against the viewport's, and
/// each of `ids` (element ids, or CSS selectors when they are not plain
/// names) displayed, non-empty and horizontally inside the viewport.
async fn layout(client: &Client, ids: &[&str]) -> Result<Layout, CmdError> {
    let v = client
        .execute(
            r#"
            const vw = window.innerWidth;
            const bad = [];
            for (const id of arguments[0]) {
              const el = /^[a-z][\w-]*$/i.test(id) ? document.getElementById(id) : document.querySelector(id);
              if (!el) { bad.push(id + ": missing"); continue; }
              const r = el.getBoundingClientRect();
              const s = getComputedStyle(el);
              if (el.hidden || s.display === "none" || s.visibility === "hidden" || r.width <= 0 || r.height <= 0) {
                bad.push(id + ": not visible"); continue;
              }
              if (r.left < 0 || r.right > vw + 0.5) {
                bad.push(id + ": outside the viewport (" + r.left + " to " + r.right + ")");
              }
            }
            return [vw, document.documentElement.scrollWidth, bad];
            "#,
            vec![serde_json::json!(ids)],
        )
        .await?;
    Ok(Layout {
        inner_width: v[0].as_f64().unwrap_or(0.0),
        scroll_width: v[1].as_f64().unwrap_or(f64::MAX),
        bad: v[2]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x.as_str().unwrap_or("?").to_owned())
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Checks that the page fits `width` with `ids` visible in it.
async fn fits(client: &Client, page: &str, width: u32, ids: &[&str]) -> Result<(), String> {
    let l = layout(client, ids).await.map_err(|e| e.to_string())?;
    if !(f64::from(width) - 20.0..=f64::from(width)).contains(&l.inner_width) {
        return Err(format!(
            "{page} at {width} px: the viewport is {} px wide",
            l.inner_width
        ));
    }
    if l.scroll_width > l.inner_width {
        return Err(format!(
            "{page} at {width} px overflows horizontally: document {} px, viewport {} px",
            l.scroll_width, l.inner_width
        ));
    }
    if !l.bad.is_empty() {
        return Err(format!("{page} at {width} px: {:?}", l.bad));
    }
    Ok(())
}

/// A WebDriver error as text.
fn wd(e: CmdError) -> String {
    e.to_string()
}

/// A portal with one doctor (`quota` codes a day), served on loopback.
async fn portal(quota: Option<u64>) -> (TestDb, SocketAddr) {
    let db = sqlite().await;
    let clock = manual_at(chrono::Utc::now());
    let svc = service(&db, &clock);
    svc.add_doctor("dr.martin", "Dr Martin", PASSWORD, quota)
        .await
        .unwrap();
    let addr = serve(svc.router()).await;
    (db, addr)
}

/// Logs in with the keyboard (Enter submits) from the login page.
async fn log_in(client: &Client) -> Result<(), CmdError> {
    client
        .wait()
        .for_element(Locator::Id("username"))
        .await?
        .send_keys("dr.martin")
        .await?;
    client
        .find(Locator::Id("password"))
        .await?
        .send_keys(&format!("{PASSWORD}{}", char::from(Key::Enter)))
        .await?;
    client.wait().for_element(Locator::Id("generate")).await?;
    Ok(())
}

/// The logout button in the page header.
const LOGOUT: &str = "form[action='/portal/logout'] button";

/// Elements that must be visible on the code page: the code, its expiry
/// and countdown, the QR code, the copy and print buttons (shown by the
/// script), another-code and logout buttons.
const CODE_PAGE: &[&str] = &[
    "code",
    "expiry",
    "countdown",
    "qr",
    "#qr svg",
    "copy",
    "print",
    "generate",
    LOGOUT,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_portal_in_headless_chromium_at_390_and_1280_px() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (db, addr) = portal(None).await;
    let base = format!("http://127.0.0.1:{}", addr.port());
    let client = &browser.client;

    let mut issued = Vec::new();
    for (width, height) in WIDTHS {
        let run = async {
            client.set_window_size(width, height).await.map_err(wd)?;
            client.goto(&format!("{base}/portal/")).await.map_err(wd)?;
            // Redirected to the login page.
            client
                .wait()
                .for_element(Locator::Id("username"))
                .await
                .map_err(wd)?;
            fits(client, "login", width, &["username", "password", "login"]).await?;
            log_in(client).await.map_err(wd)?;
            fits(
                client,
                "request",
                width,
                &["generate", "quota-left", LOGOUT],
            )
            .await?;
            let code = async {
                client.find(Locator::Id("generate")).await?.click().await?;
                client
                    .wait()
                    .for_element(Locator::Id("code"))
                    .await?
                    .text()
                    .await
            }
            .await
            .map_err(wd)?;
            let expiry = async { client.find(Locator::Id("expiry")).await?.text().await }
                .await
                .map_err(wd)?;
            // Let the script tick (and show the copy and print buttons).
            tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
            let countdown = async { client.find(Locator::Id("countdown")).await?.text().await }
                .await
                .map_err(wd)?;
            fits(client, "code", width, CODE_PAGE).await?;
            let (qr_width, png, url) = async {
                let qr = client
                    .find(Locator::Css("#qr svg"))
                    .await?
                    .rectangle()
                    .await?;
                let png = client.screenshot().await?;
                // Log out: back on the login page, and the session is gone.
                client.find(Locator::Css(LOGOUT)).await?.click().await?;
                client.wait().for_element(Locator::Id("username")).await?;
                client.goto(&format!("{base}/portal/code")).await?;
                client.wait().for_element(Locator::Id("username")).await?;
                Ok::<_, CmdError>((qr.2, png, client.current_url().await?))
            }
            .await
            .map_err(wd)?;
            Ok::<_, String>((code, expiry, countdown, qr_width, png, url))
        };
        let result = run.await;
        let (code, expiry, countdown, qr_width, png, url) = match result {
            Ok(r) => r,
            Err(e) => {
                browser.close().await;
                panic!("at {width} px: {e}");
            }
        };
        assert_eq!(code.len(), 6, "{code}");
        assert_eq!(expiry.len(), 5, "HH:MM: {expiry}");
        // The script has ticked: 59 min something, under the hour.
        assert!(
            countdown.starts_with("59 min") || countdown.starts_with("60 min"),
            "{countdown}"
        );
        // Large enough for a phone camera across a desk.
        assert!(
            qr_width >= 150.0,
            "QR code {qr_width} px wide at {width} px"
        );
        assert!(url.path().ends_with("/portal/login"), "after logout: {url}");
        assert!(png.starts_with(b"\x89PNG"));
        let target = target_dir();
        std::fs::create_dir_all(&target).unwrap();
        let shot = target.join(format!("robert-codes-portal-code-{width}.png"));
        std::fs::write(&shot, &png).unwrap();
        eprintln!("screenshot: {}", shot.display());
        issued.push(code);
    }
    browser.close().await;

    for code in &issued {
        let (_, body) = http_get(addr, &format!("/api/v1/verify?code={code}"), &[]).await;
        assert_eq!(body, r#"{"valid":true}"#);
        let (_, body) = http_get(addr, &format!("/api/v1/verify?code={code}"), &[]).await;
        assert_eq!(body, r#"{"valid":false}"#);
    }
    db.finish().await;
}

/// Where the documentation's screenshots live.
fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/portal")
}

/// Saves a screenshot of the whole page (the window is made as tall as the
/// document) as `docs/portal/<name>-<width>.png`.
async fn shoot(client: &Client, name: &str, width: u32, height: u32) -> Result<PathBuf, CmdError> {
    let full = client
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await?
        .as_f64()
        .unwrap_or(f64::from(height));
    // Whole CSS pixels; the document is at most a few thousand pixels tall.
    let tall = (full.ceil() as u32).max(height);
    client.set_window_size(width, tall).await?;
    let png = client.screenshot().await?;
    client.set_window_size(width, height).await?;
    let path = docs_dir().join(format!("{name}-{width}.png"));
    std::fs::write(&path, &png).unwrap();
    Ok(path)
}

/// Refreshes `docs/portal/*.png`: the login page, a code, and the page of a
/// doctor whose daily quota is used up, at 390 and 1280 px. Run on demand
/// (see the module documentation); each file should stay under 200 KB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/portal/*.png; run on demand with --ignored"]
async fn portal_screenshots_for_the_docs() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    std::fs::create_dir_all(docs_dir()).unwrap();
    let mut written = Vec::new();
    for (width, height) in WIDTHS {
        // A fresh doctor with one code a day, so the second visit shows the
        // quota page.
        let (db, addr) = portal(Some(1)).await;
        let base = format!("http://127.0.0.1:{}", addr.port());
        let client = &browser.client;
        let run = async {
            client.set_window_size(width, height).await?;
            client.goto(&format!("{base}/portal/login")).await?;
            client.wait().for_element(Locator::Id("username")).await?;
            written.push(shoot(client, "login", width, height).await?);
            log_in(client).await?;
            client.find(Locator::Id("generate")).await?.click().await?;
            client.wait().for_element(Locator::Id("code")).await?;
            tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
            written.push(shoot(client, "code", width, height).await?);
            client.goto(&format!("{base}/portal/code")).await?;
            client
                .wait()
                .for_element(Locator::Id("quota-reset"))
                .await?;
            written.push(shoot(client, "quota", width, height).await?);
            Ok::<_, CmdError>(())
        };
        if let Err(e) = run.await {
            browser.close().await;
            panic!("at {width} px: {e}");
        }
        db.finish().await;
    }
    browser.close().await;
    for path in &written {
        let size = std::fs::metadata(path).unwrap().len();
        eprintln!("{} ({} KB)", path.display(), size / 1024);
        assert!(size < 200 * 1024, "{} is {size} bytes", path.display());
    }
}
