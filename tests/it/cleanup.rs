//! A failing test leaves nothing behind: its harness drops while the panic unwinds and
//! takes the test's queues, exchanges, worker process and data dir with it.

use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use billflow::broker::{self, Topology};
use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ErrorKind, ExchangeKind};

use crate::common::{broker_url, Harness};

/// What the failing test made, reported before it panics.
struct Made {
    topology: Topology,
    data_dir: PathBuf,
    worker_pid: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_test_leaves_nothing_on_the_broker() {
    let (report, made) = tokio::sync::oneshot::channel();
    let failing = tokio::spawn(async move {
        let h = Harness::start("drop").await;
        let worker = h.spawn_worker_process();
        let connection = broker::connect(&h.amqp_url, "billflow-test-check")
            .await
            .expect("connect");
        // The worker is up once it holds its presence queue.
        let presence = h.topology.presence_queue(0);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !exists(&connection, Object::Queue(&presence)).await {
            assert!(Instant::now() < deadline, "the worker never started");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = report.send(Made {
            topology: h.topology.clone(),
            data_dir: h.data_dir.path().to_path_buf(),
            worker_pid: worker.id(),
        });
        panic!("deliberately: the harness must clean up while this test unwinds");
    });
    let ended = failing.await;
    assert!(ended.is_err_and(|e| e.is_panic()), "the test panicked");
    let made = made.await.expect("the test got as far as its panic");

    let connection = broker::connect(&broker_url().await, "billflow-test-check")
        .await
        .expect("connect");
    let mut left = Vec::new();
    for queue in made.topology.queues() {
        if exists(&connection, Object::Queue(&queue)).await {
            left.push(queue);
        }
    }
    for exchange in [
        made.topology.commands_exchange(),
        made.topology.events_exchange(),
    ] {
        if exists(&connection, Object::Exchange(&exchange)).await {
            left.push(exchange);
        }
    }
    assert!(left.is_empty(), "left on the broker: {left:?}");

    let alive = Process::new("kill")
        .args(["-0", &made.worker_pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(!alive, "the worker process {} still runs", made.worker_pid);
    // Its presence queue goes with its connection, once the broker has seen it close.
    let presence = made.topology.presence_queue(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while exists(&connection, Object::Queue(&presence)).await {
        assert!(
            Instant::now() < deadline,
            "{presence} is left on the broker"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!made.data_dir.exists(), "the data dir is left");
    let _ = connection.close(200, "checked".into()).await;
}

enum Object<'a> {
    Queue(&'a str),
    Exchange(&'a str),
}

/// A passive declare, on a channel of its own (a refused one closes it): only NOT_FOUND
/// means the object is gone; any other failure fails the test.
async fn exists(connection: &Connection, object: Object<'_>) -> bool {
    let channel = connection.create_channel().await.expect("channel");
    let declared = match object {
        Object::Queue(name) => channel
            .queue_declare(
                name.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map(drop),
        Object::Exchange(name) => {
            channel
                .exchange_declare(
                    name.into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
        }
    };
    match declared {
        Ok(()) => {
            let _ = channel.close(200, "declared".into()).await;
            true
        }
        Err(e) => match e.kind() {
            ErrorKind::ProtocolError(amqp) if amqp.get_id() == 404 => false,
            _ => panic!("passive declare: {e}"),
        },
    }
}
