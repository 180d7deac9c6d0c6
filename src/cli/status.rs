//! `billflow status COMMAND_ID`: a command's stage timeline, read from a worker's admin API.

use std::time::Duration;

use anyhow::{bail, Context};

use crate::runtime::admin::Timeline;
use crate::secret::Secret;

/// How long the whole request to the admin API may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Reads the timeline, sending `token` as `Authorization: Bearer` when one is given.
pub async fn fetch(
    http_addr: &str,
    command_id: &str,
    token: Option<&Secret>,
) -> anyhow::Result<Timeline> {
    let base = if http_addr.starts_with("http") {
        http_addr.trim_end_matches('/').to_string()
    } else {
        format!("http://{http_addr}")
    };
    let id = percent_encoding::utf8_percent_encode(command_id, percent_encoding::NON_ALPHANUMERIC);
    let url = format!("{base}/workflows/{id}");
    // A redirect would carry the token elsewhere: none is followed.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .build()
        .context("HTTP client")?;
    let token = token.map(|t| t.expose().trim()).filter(|t| !t.is_empty());
    let mut request = client.get(&url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| {
        format!("cannot reach the worker's admin API at {base} (BILLFLOW_HTTP_ADDR)")
    })?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        match token {
            None => bail!(
                "the worker at {base} requires the admin token: set BILLFLOW_ADMIN_TOKEN (or --admin-token)"
            ),
            Some(_) => bail!(
                "the worker at {base} refused the admin token: BILLFLOW_ADMIN_TOKEN (or --admin-token) is wrong"
            ),
        }
    }
    if status == reqwest::StatusCode::NOT_FOUND {
        let why: Option<serde_json::Value> = response.json().await.ok();
        let why = why
            .as_ref()
            .and_then(|v| v["error"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| format!("no worker has a record of command {command_id:?}"));
        bail!("the worker at {base}: {why}");
    }
    if !status.is_success() {
        bail!(
            "{url}: HTTP {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    response
        .json()
        .await
        .with_context(|| format!("{url} did not answer with a timeline"))
}

/// One line per stage: when it started, how long it took, its state and attempt, and
/// its error or output.
/// The timeline as text, every configured secret masked.
pub fn render(timeline: &Timeline) -> String {
    crate::redact::global()
        .redact(&render_plain(timeline))
        .into_owned()
}

fn render_plain(timeline: &Timeline) -> String {
    let mut out = format!("command {}\n", timeline.command_id);
    for s in &timeline.stages {
        let took = (s.updated_at - s.started_at).num_milliseconds();
        let detail = match (&s.error, &s.output) {
            (Some(error), _) => format!(
                "{}{error}",
                s.reason
                    .as_deref()
                    .map(|x| format!("[{x}] "))
                    .unwrap_or_default()
            ),
            (None, Some(output)) => output.to_string(),
            (None, None) => String::new(),
        };
        out.push_str(&format!(
            "{}  {:<20} {:<10} attempt {}  {:>6} ms  {}\n",
            s.started_at.format("%Y-%m-%d %H:%M:%S%.3f"),
            s.stage,
            s.state,
            s.attempt,
            took,
            detail
        ));
    }
    if let Some(why) = &timeline.incomplete {
        out.push_str(&format!("note: {why}\n"));
    }
    out
}

/// `billflow status`: prints a command's timeline as a worker's admin API reports it.
pub async fn run(http_addr: &str, command_id: &str, token: Option<&Secret>) -> anyhow::Result<()> {
    let timeline = fetch(http_addr, command_id, token).await?;
    print!("{}", render(&timeline));
    Ok(())
}
