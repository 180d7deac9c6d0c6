//! Workloads and checks shared by the suites that kill workers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use billflow::contract::events::{CloudEvent, Outcome};
use billflow::sim::emersion as em;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::Connection;
use serde_json::{json, Value};

pub const NON_IDEMPOTENT: [&str; 9] = [
    "CreateCart",
    "ModifyCart",
    "renewAdvancePay",
    "SubmitCart",
    "StartOrder",
    "SelectPackagePlan",
    "CompleteOrder",
    "AddNote",
    "CreatePayment",
];

/// A sign-up of one of the three SQ kinds, by `i`.
pub fn sign_up(id: &str, i: usize) -> Value {
    let contact = json!({"type_id": 700001, "first_name": "Jane", "last_name": "Citizen"});
    let data = match i % 3 {
        0 => json!({
            "account": {"account_id": em::ACTIVE_ACCOUNT_ID},
            "service_type_id": em::BUSINESS_SUPPORT_TYPE_ID,
            "sq": {"kind": "simple"},
            "package": {"plan_id": em::BUSINESS_SUPPORT_BASIC_PLAN_ID},
            "configuration": [{"type_id": 500001, "value": "HQ"}],
            "contacts": [contact],
            "accept_terms": true,
            "note": {"subject": "chaos", "detail": id},
            "payment": {"transaction_category": "Credit Card", "reference": id,
                        "amount": "10.00", "transaction_date": "2026-11-22"}
        }),
        1 => json!({
            "account": {"account_id": em::ACTIVE_ACCOUNT_ID},
            "service_type_id": em::PHONE_LINE_TYPE_ID,
            "sq": {"kind": "general_phone", "phone_number": "0299998888"},
            "package": {"plan_id": em::PHONE_BASIC_PLAN_ID},
            "configuration": [{"type_id": 500020, "value": "Listed"}]
        }),
        _ => json!({
            "account": {"account_id": em::ACTIVE_ACCOUNT_ID},
            "service_type_id": em::NBN_TYPE_ID,
            "sq": {"kind": "nwb", "address": {"street_number": "1", "street_name": "George",
                   "street_type": "St", "suburb": "Sydney", "state": "NSW", "postcode": "2000"}},
            "package": {"plan_id": em::NBN_50_PLAN_ID},
            "configuration": [{"type_id": 500010, "value": "MDM"}],
            "features": [{"feature_id": 600010, "value": "203.0.113.7"}],
            "contacts": [contact],
            "identifier": {"username": "jane", "realm": "nbn.example.net", "password": "long-enough-1"},
            "accept_terms": true
        }),
    };
    json!({"command_id": id, "type": "service_order.submit", "data": data})
}

/// (idempotency key, operation) of every non-idempotent call that took effect more than
/// once, from the simulator's call log.
pub fn duplicate_effects(calls: &[Value]) -> Vec<((String, String), usize)> {
    let mut applied: BTreeMap<(String, String), usize> = BTreeMap::new();
    for call in calls {
        let op = call["operation"].as_str().unwrap_or_default().to_string();
        if call["applied"] == true && NON_IDEMPOTENT.contains(&op.as_str()) {
            let key = call["idempotency_key"]
                .as_str()
                .unwrap_or("(none)")
                .to_string();
            *applied.entry((key, op)).or_default() += 1;
        }
    }
    applied.into_iter().filter(|(_, n)| *n > 1).collect()
}

/// (command, stage) parked as `outcome_unknown` although no non-idempotent call of that
/// stage ever reached the platform: a stage that never ran, parked anyway (toil, not
/// safety). A stage's calls carry `Idempotency-Key: <command_id>/<stage>`; read-only
/// probes of the same stage do not count as sent.
pub fn parked_never_sent(events: &[CloudEvent], calls: &[Value]) -> Vec<(String, String)> {
    let sent: BTreeSet<&str> = calls
        .iter()
        .filter(|c| NON_IDEMPOTENT.contains(&c["operation"].as_str().unwrap_or_default()))
        .filter_map(|c| c["idempotency_key"].as_str())
        .collect();
    let parked: BTreeSet<(String, String)> = events
        .iter()
        .filter(|e| !e.is_terminal() && e.data.outcome == Outcome::Parked)
        .filter_map(|e| Some((e.subject.clone(), e.data.stage.clone()?)))
        .collect();
    parked
        .into_iter()
        .filter(|(command, stage)| !sent.contains(format!("{command}/{stage}").as_str()))
        .collect()
}

/// Messages ready in `queue` (`u32::MAX` when it cannot be read).
pub async fn queue_depth(conn: &Connection, queue: &str) -> u32 {
    let channel = conn.create_channel().await.expect("channel");
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let depth = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .map(|q| q.message_count())
        .unwrap_or(u32::MAX);
    let _ = channel.close(200, "counted".into()).await;
    depth
}

/// A number from the environment (a chaos run's size), or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator (xorshift): the seed is printed, so a chaos run can be
/// replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn millis(&mut self, from: u64, spread: u64) -> Duration {
        Duration::from_millis(from + self.below(spread))
    }
}
