//! Deleting a test's queues and exchanges from `Drop`, which cannot await and runs inside
//! the test's runtime (where no other runtime may block): a thread of its own, with a
//! current-thread runtime and a fresh connection (the test's may be gone), joined before
//! the drop returns.

use std::time::Duration;

use billflow::broker::{self, Topology};

/// A broker that has not answered by then is gone: the clean-up gives up, the test ends.
const LIMIT: Duration = Duration::from_secs(30);

/// Deletes every queue and exchange of `topology`, and `queues`; never panics (it may run
/// while a test unwinds), and deleting what is already gone is no error.
pub fn delete(amqp_url: &str, topology: &Topology, queues: &[String]) {
    let (url, topology, queues) = (amqp_url.to_string(), topology.clone(), queues.to_vec());
    let deleting = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            let _ = tokio::time::timeout(LIMIT, delete_on_broker(&url, &topology, &queues)).await;
        });
    });
    let _ = deleting.join();
}

async fn delete_on_broker(url: &str, topology: &Topology, queues: &[String]) {
    let Ok(connection) = broker::connect(url, "billflow-test-cleanup").await else {
        return;
    };
    if let Ok(channel) = connection.create_channel().await {
        for queue in queues {
            let _ = channel
                .queue_delete(queue.as_str().into(), Default::default())
                .await;
        }
        let _ = topology.delete(&channel).await;
        let _ = channel.close(200, "clean-up done".into()).await;
    }
    let _ = connection.close(200, "test done".into()).await;
}
