//! `billflow sim`: the simulator on a plain listener, and, with `--tls-addr`, a TLS one
//! beside it that requires a client certificate (Emersion's documented authentication),
//! so CostGuard can stay on plain HTTP while Emersion goes over TLS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::config::duration;
use crate::sim::{costguard::DEFAULT_TOKEN_LIFETIME, tls, Simulator};

#[derive(Debug, Clone, Args)]
pub struct SimSettings {
    /// Address to listen on (plain HTTP).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Latency added to every platform call, in milliseconds (also settable later with
    /// `POST /_sim/latency {"ms": N}`).
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Lifetime of the tokens the CostGuard login issues (also settable later with
    /// `POST /_sim/tokens {"lifetime_ms": N}`).
    #[arg(long, value_name = "DURATION", value_parser = duration::parse, default_value = "8h")]
    pub token_lifetime: Duration,
    /// Also serve TLS here, requiring a client certificate signed by --client-ca (with
    /// --tls-cert, --tls-key and --client-ca).
    #[arg(long, requires_all = ["tls_cert", "tls_key", "client_ca"])]
    pub tls_addr: Option<SocketAddr>,
    /// PEM file of the TLS listener's certificate chain.
    #[arg(long, value_name = "PATH", requires = "tls_addr")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the TLS listener's private key.
    #[arg(long, value_name = "PATH", requires = "tls_addr")]
    pub tls_key: Option<PathBuf>,
    /// PEM file of the CA whose client certificates the TLS listener admits.
    #[arg(long, value_name = "PATH", requires = "tls_addr")]
    pub client_ca: Option<PathBuf>,
}

/// Serves until `shutdown`.
pub async fn run(settings: SimSettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let sim = Simulator::new();
    sim.set_latency_ms(settings.latency_ms);
    if settings.token_lifetime != DEFAULT_TOKEN_LIFETIME {
        sim.set_token_lifetime(settings.token_lifetime);
    }
    let tls = match (
        &settings.tls_addr,
        &settings.tls_cert,
        &settings.tls_key,
        &settings.client_ca,
    ) {
        (Some(addr), Some(cert), Some(key), Some(ca)) => {
            let config = tls::server_config_from_files(cert, key, ca)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            tracing::info!(addr = %listener.local_addr()?, "simulator listening (TLS, client certificate required)");
            Some(tokio::spawn(sim.clone().serve_tls(
                listener,
                config,
                shutdown.clone(),
            )))
        }
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .with_context(|| format!("cannot listen on {}", settings.addr))?;
    tracing::info!(addr = %listener.local_addr()?, "simulator listening");
    sim.serve(listener, shutdown).await?;
    if let Some(tls) = tls {
        tls.await.context("TLS listener task")??;
    }
    Ok(())
}
