//! The console in a real browser: Debian's `chromium`, headless, driven through
//! `chromedriver` over WebDriver (`scripts/test` installs both). It logs in through the form,
//! makes traffic through the API (sends, some approved, some refused), reloads the overview
//! and reads the figures from the page, adds and removes a safe-list entry through the form,
//! and saves a screenshot of every page under `target/console-screenshots/` for review (with
//! `figures.txt`: what was sent and what the page showed).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{API_KEY, TestApp, skip, spawn_app_with, wrong};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts chromedriver and waits (at most 60 s: the whole suite shares 2 cores with it) until
/// it accepts connections.
async fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, port };
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on {port}");
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1700"],
        }),
    );
    ClientBuilder::rustls()
        .expect("tls roots")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session")
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn shoot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(screenshots().join(format!("{name}.png")), png).expect("write screenshot");
}

/// Waits (at most 30 s) until the page has an element matching `xpath`.
async fn appears(c: &Client, xpath: &str) {
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|e| panic!("{xpath} never appeared: {e}"));
}

async fn text(c: &Client, id: &str) -> String {
    c.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .text()
        .await
        .expect("text")
}

/// Sends to `sent` numbers over `sent / 2` hours (the test clock moves an hour after every
/// second send), approves those `approve` picks, enters one wrong code, and makes `refused`
/// refusals (a number outside the allowlist). Returns an approved verification's sid and how
/// many were approved.
async fn traffic(
    app: &TestApp,
    sent: usize,
    approve: impl Fn(usize) -> bool,
    refused: usize,
) -> (String, usize) {
    let mut sid = String::new();
    let mut approved = 0;
    for i in 0..sent {
        let number = format!("+1415555{:04}", 2000 + i);
        let code = app.send_and_read_code(&number).await;
        if i == 0 {
            let r = app.verify(&number, &wrong(&code)).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        }
        if approve(i) {
            let r = app.verify(&number, &code).await;
            assert_eq!(r.status(), StatusCode::OK);
            let body: serde_json::Value = r.json().await.expect("json");
            sid = body["data"]["sid"].as_str().expect("sid").to_owned();
            approved += 1;
        }
        if i % 2 == 1 {
            app.clock.advance(Duration::from_secs(3600));
        }
    }
    for _ in 0..refused {
        let r = app
            .post("/mfa/send-code", &json!({ "recipient": "+447911123456" }))
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    (sid, approved)
}

#[tokio::test]
async fn an_operator_logs_in_reads_the_figures_and_edits_the_safe_list_in_chromium() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        let _: Option<()> = skip(
            "chromium and chromium-driver",
            "not installed (scripts/test installs them with apt-get)",
        );
        return;
    }
    let app = spawn_app_with(&[
        ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
        ("VERIFYD_RATE_LIMIT_PREFIX_MAX", "0"),
        ("VERIFYD_SMS_PRICE", "0.0079"),
        // An event endpoint where nothing listens: the events page has rows, none delivered.
        ("VERIFYD_EVENTS_URL", "http://127.0.0.1:9/events"),
        (
            "VERIFYD_EVENTS_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
    ])
    .await;
    let driver = start_driver().await;
    let c = browser(&driver).await;

    // Log in through the form.
    c.goto(&app.url("/console")).await.expect("goto");
    shoot(&c, "login").await;
    c.find(Locator::Css("input[name=key]"))
        .await
        .expect("key field")
        .send_keys(API_KEY)
        .await
        .expect("type the key");
    c.find(Locator::Css("button[type=submit]"))
        .await
        .expect("log in button")
        .click()
        .await
        .expect("log in");
    appears(&c, "//div[@id='sends-24h']").await;
    assert_eq!(text(&c, "sends-24h").await, "0", "an empty overview first");

    // Traffic through the API over six hours: 12 sent, two in three approved, 3 refused.
    let (sent, refused) = (12, 3);
    let (sid, approved) = traffic(&app, sent, |i| i % 3 != 2, refused).await;
    assert_eq!(approved, 8);
    c.refresh().await.expect("reload");
    let shown_sends = text(&c, "sends-24h").await;
    let shown_conversions = text(&c, "conversions-24h").await;
    let shown_rate = text(&c, "conversion-rate-24h").await;
    let shown_refusals = text(&c, "refusals-24h").await;
    let shown_spend = text(&c, "spend-24h").await;
    assert_eq!(shown_sends, sent.to_string());
    assert_eq!(shown_conversions, approved.to_string());
    assert_eq!(shown_rate, "66.7 %");
    assert_eq!(shown_refusals, refused.to_string());
    assert_eq!(shown_spend, "0.09");
    assert_eq!(text(&c, "sends-7d").await, sent.to_string());
    shoot(&c, "overview").await;
    std::fs::write(
        screenshots().join("figures.txt"),
        format!(
            "sent through the API: {sent} sends ({approved} approved, 1 wrong code), {refused} refusals (country)\n\
             the overview showed: sends {shown_sends}, conversions {shown_conversions}, conversion rate {shown_rate}, \
             refused {shown_refusals}, estimated spend {shown_spend} (price 0.0079)\n"
        ),
    )
    .expect("figures");

    // The other pages.
    c.goto(&app.url("/console/attempts"))
        .await
        .expect("attempts");
    let rows = c
        .find_all(Locator::Css("#attempts tbody tr"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), sent + approved + 1 + refused, "every row");
    shoot(&c, "attempts").await;
    c.find(Locator::Css(&format!(
        "a[href='/console/verifications/{sid}']"
    )))
    .await
    .expect("a link to the verification")
    .click()
    .await
    .expect("open it");
    appears(&c, "//strong[@id='state']").await;
    assert_eq!(text(&c, "state").await, "approved");
    shoot(&c, "verification").await;
    c.goto(&app.url("/console/settings"))
        .await
        .expect("settings");
    shoot(&c, "settings").await;
    c.goto(&app.url("/console/events")).await.expect("events");
    let events = c
        .find_all(Locator::Css("#events tbody tr[data-id]"))
        .await
        .expect("event rows");
    assert!(
        events.len() >= sent,
        "a verification.pending per verification"
    );
    shoot(&c, "events").await;
    c.goto(&app.url("/console/outbox")).await.expect("outbox");
    shoot(&c, "outbox").await;

    // Add and remove a safe-list entry through the form.
    c.goto(&app.url("/console/safe-list"))
        .await
        .expect("safe list");
    c.find(Locator::Css("input[name=number]"))
        .await
        .expect("number field")
        .send_keys("+447911123456")
        .await
        .expect("type");
    c.find(Locator::Css("form.filters button[type=submit]"))
        .await
        .expect("add button")
        .click()
        .await
        .expect("add");
    // Wait for the page the form led to (a find right after a click can see the old one).
    appears(
        &c,
        "//table[@id='safe-list']//td[contains(., '+4479***3456')]",
    )
    .await;
    shoot(&c, "safe-list").await;
    c.find(Locator::Css("#safe-list button[type=submit]"))
        .await
        .expect("remove button")
        .click()
        .await
        .expect("remove");
    appears(
        &c,
        "//table[@id='safe-list']//td[contains(., 'The safe list is empty.')]",
    )
    .await;

    // Log out: the overview asks for the key again.
    c.find(Locator::Css("header button[type=submit]"))
        .await
        .expect("log out")
        .click()
        .await
        .expect("log out");
    appears(&c, "//input[@name='key']").await;
    c.goto(&app.url("/console")).await.expect("overview");
    appears(&c, "//input[@name='key']").await;
    c.close().await.expect("close the session");
}
