//! End to end in headless Chromium (WebDriver via chromedriver): log in with
//! the keyboard, generate a code, read it from the page, verify it through
//! the API (valid, then invalid), save a screenshot under `target/`.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use fantoccini::key::Key;
use fantoccini::{ClientBuilder, Locator};
use robert_codes::ManualClock;

use crate::support::*;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_portal_in_headless_chromium() {
    let (chromium, driver) = (
        Path::new("/usr/bin/chromium"),
        Path::new("/usr/bin/chromedriver"),
    );
    if !chromium.exists() || !driver.exists() {
        skip_or_fail(
            "ROBERT_TEST_REQUIRE_TOOLS",
            "skipped: chromium or chromedriver not installed (apt-get install chromium chromium-driver)",
        );
        return;
    }
    let db = sqlite().await;
    let clock = ManualClock::new(chrono::Utc::now());
    let svc = service(&db, &clock);
    svc.add_doctor("dr.web", "Dr Web", "a very good password", None)
        .await
        .unwrap();
    let addr = serve(svc.router()).await;

    let port = free_port();
    let _driver = Driver(
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
    let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=390,844",
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

    let result = async {
        let base = format!("http://127.0.0.1:{}", addr.port());
        client.goto(&format!("{base}/portal/")).await?;
        // Redirected to the login page; log in with the keyboard (Enter submits).
        client
            .wait()
            .for_element(Locator::Id("username"))
            .await?
            .send_keys("dr.web")
            .await?;
        let pw = client.find(Locator::Id("password")).await?;
        pw.send_keys(&format!("a very good password{}", char::from(Key::Enter)))
            .await?;
        client
            .wait()
            .for_element(Locator::Id("generate"))
            .await?
            .click()
            .await?;
        let code = client
            .wait()
            .for_element(Locator::Id("code"))
            .await?
            .text()
            .await?;
        let expiry = client.find(Locator::Id("expiry")).await?.text().await?;
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        let countdown = client.find(Locator::Id("countdown")).await?.text().await?;
        let png = client.screenshot().await?;
        Ok::<_, fantoccini::error::CmdError>((code, expiry, countdown, png))
    }
    .await;
    let _ = client.close().await;
    let (code, expiry, countdown, png) = result.unwrap();

    assert_eq!(code.len(), 6, "{code}");
    assert_eq!(expiry.len(), 5, "HH:MM: {expiry}");
    // The script has ticked: 59 min something, under the hour.
    assert!(
        countdown.starts_with("59 min") || countdown.starts_with("60 min"),
        "{countdown}"
    );
    let (_, body) = http_get(addr, &format!("/api/v1/verify?code={code}"), &[]).await;
    assert_eq!(body, r#"{"valid":true}"#);
    let (_, body) = http_get(addr, &format!("/api/v1/verify?code={code}"), &[]).await;
    assert_eq!(body, r#"{"valid":false}"#);

    let target = target_dir();
    std::fs::create_dir_all(&target).unwrap();
    let shot = target.join("robert-codes-portal-code.png");
    std::fs::write(&shot, &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    eprintln!("screenshot: {}", shot.display());
    db.finish().await;
}
