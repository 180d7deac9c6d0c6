//! A RabbitMQ definitions file for a topology: exchanges, queues and bindings, with the
//! delivery limits, dead-lettering (intake and shards into the undelivered queue, that one
//! into the dead queue, delay tiers back into the intake) and delay TTLs as policies, so operators can load it
//! at broker boot (`load_definitions`) or with `rabbitmqctl import_definitions` and
//! change the policies later without re-creating queues.

use lapin::types::AMQPValue;
use serde_json::{json, Map, Value};

use super::topology::{QueueRole, Topology, DELAY_TIERS};

/// The ledger streams' age limit in the definitions file: `BILLFLOW_RETENTION`'s default
/// (7 days). Keep it at least as long as the workers' retention.
const DEFAULT_LEDGER_MAX_AGE_SECS: u64 = 7 * 24 * 3600;

/// The events log's policy: a week, and at most 10 GiB (the workers' defaults).
const EVENTS_LOG_ROLE: QueueRole = QueueRole::EventsLog {
    max_age_secs: Some(DEFAULT_LEDGER_MAX_AGE_SECS),
    max_bytes: Some(10 * 1024 * 1024 * 1024),
};

/// Policies outrank catch-all policies of priority 0 an operator may have.
const POLICY_PRIORITY: i64 = 10;

impl Topology {
    /// Policy names and the queues they apply to, by exact-match pattern.
    pub fn policies(&self) -> Vec<(String, String, Map<String, Value>)> {
        let prefix = regex_escape(&self.prefix);
        let mut policies = vec![(
            format!("{}.work", self.prefix),
            format!(r"^{prefix}\.(intake|work\.[0-9]+)$"),
            policy_definition(self.policy_arguments(QueueRole::Work)),
        )];
        for tier in DELAY_TIERS {
            policies.push((
                format!("{}.delay.{tier}ms", self.prefix),
                format!(r"^{prefix}\.delay\.{tier}ms$"),
                policy_definition(self.policy_arguments(QueueRole::Delay(tier))),
            ));
        }
        policies.push((
            format!("{}.ledger", self.prefix),
            format!(r"^{prefix}\.ledger\.[0-9]+$"),
            policy_definition(self.policy_arguments(QueueRole::Ledger {
                max_age_secs: Some(DEFAULT_LEDGER_MAX_AGE_SECS),
            })),
        ));
        policies.push((
            self.events_log(),
            format!(r"^{prefix}\.events\.log$"),
            policy_definition(self.policy_arguments(EVENTS_LOG_ROLE)),
        ));
        policies.push((
            self.undelivered_queue(),
            format!(r"^{prefix}\.undelivered$"),
            policy_definition(self.policy_arguments(QueueRole::Undelivered)),
        ));
        policies
    }

    /// The definitions document for `vhost`. Its queues carry only what a declaration
    /// must fix (type, single active consumer): workers that use it run with
    /// `BILLFLOW_QUEUE_ARGUMENTS=false`, so their declarations match.
    pub fn definitions(&self, vhost: &str) -> Value {
        let bare = self.clone().with_queue_arguments(false);
        let queue = |name: String, role: QueueRole, shard: bool| {
            json!({
                "name": name, "vhost": vhost, "durable": true, "auto_delete": false,
                "arguments": arguments(bare.fixed_arguments(role, shard)),
            })
        };
        let mut queues = vec![
            queue(self.dead_queue(), QueueRole::Dead, false),
            queue(self.undelivered_queue(), QueueRole::Undelivered, false),
            queue(self.intake_queue(), QueueRole::Work, false),
        ];
        queues.extend(
            self.shard_queues()
                .into_iter()
                .map(|q| queue(q, QueueRole::Work, true)),
        );
        queues.extend(
            DELAY_TIERS
                .iter()
                .map(|t| queue(self.delay_queue(*t), QueueRole::Delay(*t), false)),
        );
        queues.extend(self.ledger_streams().into_iter().map(|q| {
            let role = QueueRole::Ledger {
                max_age_secs: Some(DEFAULT_LEDGER_MAX_AGE_SECS),
            };
            queue(q, role, false)
        }));
        queues.push(queue(self.events_log(), EVENTS_LOG_ROLE, false));
        let exchanges: Vec<Value> = [self.commands_exchange(), self.events_exchange()]
            .into_iter()
            .map(|name| {
                json!({
                    "name": name, "vhost": vhost, "type": "topic", "durable": true,
                    "auto_delete": false, "internal": false, "arguments": {},
                })
            })
            .collect();
        let policies: Vec<Value> = self
            .policies()
            .into_iter()
            .map(|(name, pattern, definition)| {
                json!({
                    "vhost": vhost, "name": name, "pattern": pattern, "apply-to": "queues",
                    "priority": POLICY_PRIORITY, "definition": definition,
                })
            })
            .collect();
        json!({
            "vhosts": [{"name": vhost}],
            "exchanges": exchanges,
            "queues": queues,
            "bindings": [{
                "source": self.commands_exchange(), "vhost": vhost,
                "destination": self.intake_queue(), "destination_type": "queue",
                "routing_key": "#", "arguments": {},
            }, {
                "source": self.events_exchange(), "vhost": vhost,
                "destination": self.events_log(), "destination_type": "queue",
                "routing_key": "#", "arguments": {},
            }],
            "policies": policies,
        })
    }
}

/// Queue arguments `x-foo` become policy keys `foo`.
fn policy_definition(args: Vec<(&'static str, AMQPValue)>) -> Map<String, Value> {
    args.into_iter()
        .map(|(k, v)| (k.trim_start_matches("x-").to_string(), to_json(&v)))
        .collect()
}

fn arguments(args: Vec<(&'static str, AMQPValue)>) -> Map<String, Value> {
    args.into_iter()
        .map(|(k, v)| (k.to_string(), to_json(&v)))
        .collect()
}

fn to_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::LongString(s) => json!(String::from_utf8_lossy(s.as_bytes())),
        other => json!(format!("{other:?}")),
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if r"\.^$|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_match_exactly_the_queues_they_govern() {
        let t = Topology::new("bill.flow").with_shards(2);
        let policies = t.policies();
        assert_eq!(policies[0].1, r"^bill\.flow\.(intake|work\.[0-9]+)$");
        assert_eq!(policies[0].2["delivery-limit"], 20);
        assert_eq!(
            policies[0].2["dead-letter-routing-key"],
            "bill.flow.undelivered"
        );
        assert_eq!(policies[1].2["message-ttl"], 1_000);
        assert_eq!(policies[1].2["dead-letter-routing-key"], "bill.flow.intake");
        let undelivered = policies.last().unwrap();
        assert_eq!(undelivered.1, r"^bill\.flow\.undelivered$");
        assert_eq!(undelivered.2["delivery-limit"], 20);
        assert_eq!(undelivered.2["dead-letter-routing-key"], "bill.flow.dead");
        let doc = t.definitions("/");
        assert_eq!(doc["queues"][1]["name"], "bill.flow.undelivered");
        let shard = &doc["queues"][3];
        assert_eq!(shard["name"], "bill.flow.work.0");
        assert_eq!(shard["arguments"]["x-single-active-consumer"], true);
        assert!(shard["arguments"].get("x-delivery-limit").is_none());
    }
}
