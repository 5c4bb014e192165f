//! The console's HTML, as compile-time checked templates (`maud`): every value is escaped, the
//! only stylesheet is embedded (`/console/assets/console.css`), and no page has a script, so
//! everything works with JavaScript off. Numbers reach these templates already masked; the
//! only page that shows a message body (and so a code) is the dev outbox.

use maud::{DOCTYPE, Markup, html};

use super::overview::{Figures, percent, rate};
use crate::store::console::Volume;

/// What every signed-in page's header needs.
pub struct Frame {
    /// The session's CSRF token, for the logout form.
    pub csrf: String,
    /// Whether the dev outbox exists (the console sender).
    pub outbox: bool,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="robots" content="noindex";
            title { (title) " · verifyd console" }
            link rel="stylesheet" href="/console/assets/console.css";
        }
    }
}

/// A signed-in page: the header with the menu and logout, then `body`.
pub fn page(title: &str, here: &str, frame: &Frame, body: Markup) -> Markup {
    let mut links = vec![
        ("/console", "Overview"),
        ("/console/attempts", "Attempts"),
        ("/console/safe-list", "Safe list"),
        ("/console/events", "Events"),
        ("/console/settings", "Settings"),
    ];
    if frame.outbox {
        links.push(("/console/outbox", "Dev outbox"));
    }
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header {
                    span.brand { "verifyd" }
                    nav {
                        @for (href, label) in &links {
                            a.here[*href == here] href=(href) { (label) }
                        }
                    }
                    form method="post" action="/console/logout" {
                        input type="hidden" name="csrf" value=(frame.csrf);
                        button type="submit" { "Log out" }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The login page, with a generic error when a login failed.
pub fn login(error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Log in"))
            body {
                div.login {
                    h1 { "verifyd console" }
                    @if let Some(e) = error {
                        p.error role="alert" { (e) }
                    }
                    form.stack method="post" action="/console/login" {
                        label {
                            "API key"
                            input type="password" name="key" autocomplete="current-password" required autofocus;
                        }
                        button.primary type="submit" { "Log in" }
                    }
                    p.muted { "Use one of the keys of VERIFYD_API_KEYS (or the key printed on first start). The session lasts 12 hours." }
                }
            }
        }
    }
}

/// A page that only says what went wrong (a bad filter, an unknown sid, …).
pub fn message(title: &str, frame: &Frame, text: &str) -> Markup {
    page(
        title,
        "",
        frame,
        html! {
            p.error role="alert" { (text) }
            p { a href="/console" { "Back to the overview" } }
        },
    )
}

fn card(id: &str, label: &str, value: &str, note: Option<&str>) -> Markup {
    html! {
        div.card {
            div.label { (label) }
            div.value id=(id) { (value) }
            @if let Some(n) = note { div.note { (n) } }
        }
    }
}

/// One window's figures as cards.
fn window(suffix: &str, title: &str, f: &Figures, price: Option<f64>) -> Markup {
    let fraud_note = if f.fraud_blocked == 0 {
        "fraud guard: none (or not enabled)"
    } else {
        "refusals fraud_blocked"
    };
    html! {
        h2 { (title) }
        div.cards {
            (card(&format!("sends-{suffix}"), "Codes sent", &f.sends.to_string(), (f.failed > 0).then_some(&*format!("{} failed", f.failed))))
            (card(&format!("conversions-{suffix}"), "Conversions", &f.conversions.to_string(), Some("approved checks")))
            (card(&format!("conversion-rate-{suffix}"), "Conversion rate", &percent(f.conversion_rate()), Some("conversions per code sent")))
            (card(&format!("refusals-{suffix}"), "Refused", &f.refused().to_string(), Some("requests refused before sending")))
            (card(&format!("fraud-blocked-{suffix}"), "Fraud-guard blocks", &f.fraud_blocked.to_string(), Some(fraud_note)))
            (card(&format!("wrong-codes-{suffix}"), "Wrong codes", &f.wrong_codes.to_string(), None))
            @if let Some(p) = price {
                (card(&format!("spend-{suffix}"), "Estimated spend", &format!("{:.2}", f.spend(p)), Some("sends × VERIFYD_SMS_PRICE")))
            }
        }
    }
}

fn refusal_table(f: &Figures) -> Markup {
    html! {
        div.scroll {
            table {
                thead { tr { th { "Reason (bucket)" } th.num { "Refused" } } }
                tbody {
                    @for (reason, n) in &f.refusals {
                        tr { td { (reason) } td.num { (n) } }
                    }
                    @if f.refusals.is_empty() {
                        tr { td.muted colspan="2" { "No refusals." } }
                    }
                }
            }
        }
    }
}

fn destination_table(what: &str, rows: &[Volume]) -> Markup {
    html! {
        div.scroll {
            table {
                thead { tr { th { (what) } th.num { "Sends" } th.num { "Conversions" } th.num { "Conversion" } } }
                tbody {
                    @for v in rows {
                        tr {
                            td { (v.key) }
                            td.num { (v.sends) }
                            td.num { (v.conversions) }
                            td.num { (percent(rate(v.conversions, v.sends))) }
                        }
                    }
                    @if rows.is_empty() {
                        tr { td.muted colspan="4" { "Nothing sent." } }
                    }
                }
            }
        }
    }
}

/// Sends (light) and conversions (dark) per hour as bars, labelled every 6 hours (UTC).
pub fn chart(hours: &[(i64, u64, u64)]) -> Markup {
    const W: usize = 720;
    const H: u64 = 180;
    const BASE: u64 = 160;
    let slot = W / hours.len().max(1);
    let bar = (slot / 2).saturating_sub(1).max(1);
    let top = hours.iter().map(|h| h.1.max(h.2)).max().unwrap_or(0).max(1);
    let height = |n: u64| n * (BASE - 10) / top;
    html! {
        svg.chart viewBox=(format!("0 0 {W} {H}")) role="img" aria-label="Sends and conversions per hour" {
            // SVG elements inside HTML must be closed explicitly (`{}`): a bare tag would swallow
            // the elements after it.
            line.axis x1="0" y1=(BASE) x2=(W) y2=(BASE) {}
            @for (i, (hour, sends, conversions)) in hours.iter().enumerate() {
                @let x = i * slot;
                @let hs = height(*sends);
                @let hc = height(*conversions);
                g {
                    title { (format!("{:02}:00 UTC: {sends} sent, {conversions} converted", hour.rem_euclid(24))) }
                    rect.sends x=(x + 1) y=(BASE - hs) width=(bar) height=(hs) {}
                    rect.conv x=(x + 1 + bar) y=(BASE - hc) width=(bar) height=(hc) {}
                }
                @if hour.rem_euclid(24) % 6 == 0 {
                    text x=(x + 1) y=(BASE + 14) { (format!("{:02}h", hour.rem_euclid(24))) }
                }
            }
            text x=(W - 4) y="12" text-anchor="end" { "max " (top) }
        }
        p.legend.muted { span.key-sends {} "codes sent" span.key-conv {} "conversions" " · per hour, UTC" }
    }
}

/// Everything the overview shows.
pub struct OverviewPage<'a> {
    pub day: &'a Figures,
    pub week: &'a Figures,
    pub hours: &'a [(i64, u64, u64)],
    pub countries_day: &'a [Volume],
    pub countries_week: &'a [Volume],
    pub prefixes_day: &'a [Volume],
    pub prefixes_week: &'a [Volume],
    pub price: Option<f64>,
}

pub fn overview(frame: &Frame, o: &OverviewPage<'_>) -> Markup {
    page(
        "Overview",
        "/console",
        frame,
        html! {
            (window("24h", "Last 24 hours", o.day, o.price))
            h2 { "Sends and conversions, last 24 hours" }
            (chart(o.hours))
            (window("7d", "Last 7 days", o.week, o.price))
            h2 { "Refusals by reason" }
            div.grid2 {
                div { p.muted { "Last 24 hours" } (refusal_table(o.day)) }
                div { p.muted { "Last 7 days" } (refusal_table(o.week)) }
            }
            h2 { "Countries" }
            div.grid2 {
                div { p.muted { "Last 24 hours" } (destination_table("Country", o.countries_day)) }
                div { p.muted { "Last 7 days" } (destination_table("Country", o.countries_week)) }
            }
            h2 { "Prefixes" }
            div.grid2 {
                div { p.muted { "Last 24 hours" } (destination_table("Prefix", o.prefixes_day)) }
                div { p.muted { "Last 7 days" } (destination_table("Prefix", o.prefixes_week)) }
            }
            p.muted { "Counted per hour as requests happen (UTC hours); a resend counts as a send." }
        },
    )
}

/// One attempt-log row as shown (number already masked).
pub struct Row {
    pub time: String,
    pub kind: &'static str,
    pub outcome: String,
    pub channel: String,
    pub country: String,
    pub number: String,
    pub verification: Option<String>,
    pub vendor: String,
    /// A send's delivery status as its vendor reported it (`delivered`, `failed (30003)`),
    /// with the failovers it took; empty before delivery.
    pub delivery: String,
}

fn rows_table(rows: &[Row]) -> Markup {
    html! {
        div.scroll {
            table #attempts {
                thead { tr { th { "Time (UTC)" } th { "Kind" } th { "Outcome" } th { "Channel" } th { "Country" } th { "Number" } th { "Verification" } th { "Vendor" } th { "Delivery" } } }
                tbody {
                    @for r in rows {
                        tr {
                            td { (r.time) } td { (r.kind) } td { (r.outcome) } td { (r.channel) }
                            td { (r.country) } td.number { (r.number) }
                            td { @if let Some(sid) = &r.verification { a href=(format!("/console/verifications/{sid}")) { (sid) } } }
                            td { (r.vendor) }
                            td { (r.delivery) }
                        }
                    }
                    @if rows.is_empty() {
                        tr { td.muted colspan="9" { "No attempts match." } }
                    }
                }
            }
        }
    }
}

/// The attempts page's filter form values, as typed.
#[derive(Clone, Debug, Default)]
pub struct FilterForm {
    pub from: String,
    pub to: String,
    pub country: String,
    pub channel: String,
    pub status: String,
    pub number: String,
}

/// The statuses the filter offers: (value, label).
pub const STATUSES: &[(&str, &str)] = &[
    ("sent", "sent"),
    ("failed", "send failed"),
    ("approved", "approved"),
    ("incorrect", "wrong code"),
    ("max_attempts", "too many checks"),
    ("not_found", "nothing pending"),
    ("canceled", "canceled"),
    ("refused", "refused"),
];

/// The channels the filter offers.
pub const CHANNELS: &[&str] = &["sms", "call", "email", "whatsapp", "sna"];

pub fn attempts(
    frame: &Frame,
    form: &FilterForm,
    error: Option<&str>,
    rows: &[Row],
    older: Option<String>,
) -> Markup {
    page(
        "Attempts",
        "/console/attempts",
        frame,
        html! {
            form.filters method="get" action="/console/attempts" {
                label { "From (UTC date)" input type="date" name="from" value=(form.from); }
                label { "To (UTC date, inclusive)" input type="date" name="to" value=(form.to); }
                label { "Country" input type="text" name="country" value=(form.country) size="3" maxlength="2" placeholder="US"; }
                label { "Channel"
                    select name="channel" {
                        option value="" { "any" }
                        @for c in CHANNELS { option value=(c) selected[form.channel == *c] { (c) } }
                    }
                }
                label { "Status"
                    select name="status" {
                        option value="" { "any" }
                        @for (v, l) in STATUSES { option value=(v) selected[form.status == *v] { (l) } }
                    }
                }
                label { "Exact number or email" input type="text" name="number" value=(form.number) placeholder="+12025550123"; }
                button.primary type="submit" { "Filter" }
                a href="/console/attempts" { "Clear" }
            }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            (rows_table(rows))
            @if let Some(href) = older { p { a #older href=(href) { "Older attempts →" } } }
        },
    )
}

pub fn verification(frame: &Frame, sid: &str, state: &str, rows: &[Row]) -> Markup {
    page(
        &format!("Verification {sid}"),
        "",
        frame,
        html! {
            p { "State from the attempt log: " strong #state { (state) } }
            (rows_table(rows))
        },
    )
}

/// A safe-list entry as shown.
pub struct SafeEntry {
    pub sid: String,
    pub number: String,
}

pub fn safe_list(
    frame: &Frame,
    entries: &[SafeEntry],
    notice: Option<&str>,
    error: Option<&str>,
) -> Markup {
    page(
        "Safe list",
        "/console/safe-list",
        frame,
        html! {
            p.muted { "Safe-listed numbers skip the country and number-type rules and the prefix, country and global buckets; never the per-number and per-IP limits." }
            @if let Some(n) = notice { p.notice role="status" { (n) } }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.filters method="post" action="/console/safe-list" {
                input type="hidden" name="csrf" value=(frame.csrf);
                label { "Number (E.164)" input type="tel" name="number" required placeholder="+12025550123"; }
                button.primary type="submit" { "Add" }
            }
            div.scroll {
                table #safe-list {
                    thead { tr { th { "Number" } th { "Entry" } th {} } }
                    tbody {
                        @for e in entries {
                            tr {
                                td.number { (e.number) } td { (e.sid) }
                                td {
                                    form method="post" action="/console/safe-list/remove" {
                                        input type="hidden" name="csrf" value=(frame.csrf);
                                        input type="hidden" name="sid" value=(e.sid);
                                        button.link type="submit" { "Remove" }
                                    }
                                }
                            }
                        }
                        @if entries.is_empty() { tr { td.muted colspan="3" { "The safe list is empty." } } }
                    }
                }
            }
        },
    )
}

pub fn settings(frame: &Frame, settings: &[(String, String, String)]) -> Markup {
    page(
        "Settings",
        "/console/settings",
        frame,
        html! {
            p.muted { "The effective configuration, secrets redacted, as " code { "verifyd config" } " prints it. Change it in the environment or verifyd.toml and restart." }
            div.scroll {
                table {
                    thead { tr { th { "Setting" } th { "Value" } th { "From" } } }
                    tbody {
                        @for (name, value, origin) in settings {
                            tr { td { code { (name) } } td { (value) } td.muted { (origin) } }
                        }
                    }
                }
            }
        },
    )
}

/// A dev-outbox message as shown (the number masked; the body, with its code, as sent).
pub struct OutboxEntry {
    pub time: String,
    pub to: String,
    pub channel: String,
    pub body: String,
}

pub fn outbox(frame: &Frame, messages: &[OutboxEntry]) -> Markup {
    page(
        "Dev outbox",
        "/console/outbox",
        frame,
        html! {
            p.muted { "What the console sender delivered (development only: this page shows codes)." }
            div.scroll {
                table {
                    thead { tr { th { "Time (UTC)" } th { "To" } th { "Channel" } th { "Message" } } }
                    tbody {
                        @for m in messages.iter().rev() {
                            tr { td { (m.time) } td { (m.to) } td { (m.channel) } td { pre.body { (m.body) } } }
                        }
                        @if messages.is_empty() { tr { td.muted colspan="4" { "No messages yet." } } }
                    }
                }
            }
        },
    )
}

/// The stylesheet, embedded in the binary.
pub const STYLESHEET: &str = include_str!("assets/console.css");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_a_bar_per_hour_and_figure() {
        let hours: Vec<(i64, u64, u64)> = (0..24).map(|h| (1000 + h, h as u64, 1)).collect();
        let svg = chart(&hours).into_string();
        assert!(!svg.contains("\"><rect"), "every SVG element is closed");
        assert_eq!(svg.matches("<rect class=\"sends\"").count(), 24);
        assert_eq!(svg.matches("</rect>").count(), 48);
        assert_eq!(svg.matches("<rect class=\"conv\"").count(), 24);
        assert!(svg.contains("23 sent, 1 converted"));
    }
}
