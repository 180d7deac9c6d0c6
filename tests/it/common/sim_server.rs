//! The simulator on a free local port, for the suites that drive it over HTTP; each suite
//! adds its own methods to `Sim`.

use billflow::sim::Simulator;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Sim {
    pub base: String,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<std::io::Result<()>>,
}

pub async fn start() -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(Simulator::new().serve(listener, shutdown.clone()));
    Sim {
        base,
        http: reqwest::Client::new(),
        shutdown,
        server,
    }
}
