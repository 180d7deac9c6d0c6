//! Generator-based fuzzing of every parser that reads untrusted input: the CostGuard SOAP
//! and REST answers, every Emersion answer, stage messages and commands, and amounts.
//!
//! Inputs are mutations (bit flips, truncation, duplication, splicing, inserted tags,
//! entities, huge numbers, deep nesting, invalid UTF-8, replaced values) of the fixtures
//! in `tests/fixtures/**`, the command examples in `schemas/examples` and valid messages
//! built here. Each target runs for `FUZZ_SECONDS` (default 5) or `FUZZ_ITERATIONS`
//! inputs; a panic fails the test with the seed, the iteration and the input, and
//! `FUZZ_SEED=<seed> FUZZ_ITERATIONS=<iteration + 1> cargo test --test fuzz <target>`
//! replays it. Longer runs: `FUZZ_SECONDS=600 cargo test --release --test fuzz`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use billflow::billing::costguard::rest::{
    Collection, FavoritePricePoint, OrderDetail, RenewAdvancePayResult, RestErrors,
    ServiceNumberDetail,
};
use billflow::billing::costguard::soap::{self, OrderResponse};
use billflow::billing::emersion::accounts;
use billflow::billing::emersion::wire::{self, Fault, Operation};
use billflow::contract::command::Command;
use billflow::contract::message::StageMessage;
use billflow::money;
use billflow::xml::Element;
use serde_json::{json, Value};

/// Largest input tried: far above every fixture, small enough to stay fast.
const MAX_INPUT: usize = 256 * 1024;

/// xorshift64*: small, fast and good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(splitmix(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

/// How long each target runs: `FUZZ_ITERATIONS` inputs, else `FUZZ_SECONDS` (default 5).
enum Budget {
    Iterations(u64),
    Time(Duration),
}

impl Budget {
    fn from_env() -> Self {
        match env_u64("FUZZ_ITERATIONS") {
            Some(n) => Budget::Iterations(n),
            None => Budget::Time(Duration::from_secs(env_u64("FUZZ_SECONDS").unwrap_or(5))),
        }
    }

    fn allows(&self, iteration: u64, started: Instant) -> bool {
        match self {
            Budget::Iterations(n) => iteration < *n,
            Budget::Time(limit) => started.elapsed() < *limit,
        }
    }
}

/// Tokens that parsers find hard, inserted at random places.
const DICTIONARY: &[&[u8]] = &[
    b"<",
    b">",
    b"</",
    b"/>",
    b"<a>",
    b"</a>",
    b"<Result>",
    b"</Result>",
    b"<CartSummary>",
    b"<Subtotal>",
    b"</Subtotal>",
    b"<Fault>",
    b"<env:Fault><env:Code><env:Value>env:Receiver</env:Value></env:Code></env:Fault>",
    b"<Messages><Message><Severity>Error</Severity></Message></Messages>",
    b"xmlns:a=\"urn:x\"",
    b" i:type=\"\"",
    b"<![CDATA[",
    b"]]>",
    b"<!--",
    b"-->",
    b"<?xml version=\"1.0\"?>",
    b"<!DOCTYPE a [<!ENTITY e \"&e;&e;\">]>",
    b"&amp;",
    b"&lt;",
    b"&e;",
    b"&unknown;",
    b"&#0;",
    b"&#x110000;",
    b"&#xD800;",
    b"&#99999999999999999999;",
    b"&",
    b"79228162514264337593543950335",
    b"792281625142643375935439503350",
    b"-79228162514264337593543950335",
    b"99999999999999999999999999999999999999999",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775808",
    b"18446744073709551616",
    b"4294967296",
    b"0.0000000000000000000000000000001",
    b"14.349999999999",
    b"1e400",
    b"-1e400",
    b"1e5",
    b"NaN",
    b"-0",
    b"-",
    b".",
    b"1.2.3",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"\\uDFFF",
    b"null",
    b"true",
    b"\"\":",
    b",",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    "é".as_bytes(),
    "𝄞".as_bytes(),
    "\u{202e}".as_bytes(),
];

/// Values a structural mutation puts in place of an element's text or a JSON value.
const ODD_TEXT: &[&str] = &[
    "",
    " ",
    "0",
    "-1",
    "-11.99",
    "14.349999999999",
    "79228162514264337593543950335",
    "-79228162514264337593543950335",
    "9223372036854775808",
    "-9223372036854775809",
    "1e5",
    "1E-5",
    "NaN",
    "Infinity",
    "-0",
    "0x10",
    "１２",
    "é",
    "\u{0}",
    "true",
    "Hotlined",
    "Submitted",
    "Error",
    "Receiver",
    "2026-02-30",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
];

fn nesting(rng: &mut Rng) -> Vec<u8> {
    // Now and then deep enough to overflow the stack of a recursive walk, were it read.
    let depth = 1 + if rng.chance(8) {
        rng.below(100_000)
    } else {
        rng.below(200)
    };
    let (open, close): (&[u8], &[u8]) = match rng.below(3) {
        0 => (b"<a>", b"</a>"),
        1 => (b"[", b"]"),
        _ => (b"{\"a\":", b"}"),
    };
    let mut out = open.repeat(depth);
    if rng.chance(2) {
        out.extend(close.repeat(depth));
    }
    out
}

/// Replaces the text of a random element (`>text<`) with an odd value.
fn replace_xml_text(input: &mut Vec<u8>, rng: &mut Rng) {
    let spans: Vec<(usize, usize)> = input
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'>')
        .filter_map(|(start, _)| {
            let end = input[start + 1..].iter().position(|b| *b == b'<')?;
            Some((start + 1, start + 1 + end))
        })
        .collect();
    if spans.is_empty() {
        return;
    }
    let (start, end) = *rng.pick(&spans);
    let odd = rng.pick(ODD_TEXT).as_bytes().to_vec();
    input.splice(start..end, odd);
}

/// Replaces a random value of a JSON document with an odd one, keeping it valid JSON.
fn replace_json_value(value: &mut Value, rng: &mut Rng) {
    let odd = |rng: &mut Rng| -> Value {
        match rng.below(9) {
            0 => json!(rng.pick(ODD_TEXT)),
            1 => json!(rng.next() as i64),
            2 => json!(u64::MAX),
            3 => json!(f64::MAX),
            4 => json!(-1.5e300),
            5 => Value::Null,
            6 => json!([]),
            7 => json!({}),
            _ => {
                let mut deep = json!(1);
                for _ in 0..rng.below(200) {
                    deep = json!([deep]);
                }
                deep
            }
        }
    };
    match value {
        Value::Object(map) if !map.is_empty() && !rng.chance(6) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = rng.pick(&keys).clone();
            if rng.chance(8) {
                map.remove(&key);
            } else if let Some(child) = map.get_mut(&key) {
                replace_json_value(child, rng);
            }
        }
        Value::Array(items) if !items.is_empty() && !rng.chance(6) => {
            let i = rng.below(items.len());
            replace_json_value(&mut items[i], rng);
        }
        other => *other = odd(rng),
    }
}

/// One mutated input from the corpus.
fn mutate(corpus: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let base = rng.pick(corpus);
    let mut input = base.clone();
    if rng.chance(4) {
        if let Ok(mut value) = serde_json::from_slice::<Value>(&input) {
            for _ in 0..1 + rng.below(3) {
                replace_json_value(&mut value, rng);
            }
            input = value.to_string().into_bytes();
            if rng.chance(2) {
                return input;
            }
        } else {
            for _ in 0..1 + rng.below(3) {
                replace_xml_text(&mut input, rng);
            }
            if rng.chance(2) {
                return input;
            }
        }
    }
    for _ in 0..1 + rng.below(8) {
        let len = input.len();
        let at = rng.below(len + 1);
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 => input.truncate(at),
            3 if len > 0 => {
                let end = (at + 1 + rng.below(64)).min(len);
                input.drain(at.min(end)..end);
            }
            4 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(256)).min(len);
                let copy = input[start..end].to_vec();
                input.splice(at..at, copy);
            }
            5 => {
                let other = rng.pick(corpus);
                if !other.is_empty() {
                    let start = rng.below(other.len());
                    let end = (start + 1 + rng.below(512)).min(other.len());
                    input.splice(at..at, other[start..end].iter().copied());
                }
            }
            6 => {
                let token = nesting(rng);
                input.splice(at..at, token);
            }
            _ => {
                let token = rng.pick(DICTIONARY).to_vec();
                input.splice(at..at, token);
            }
        }
    }
    input.truncate(MAX_INPUT);
    input
}

fn escaped(input: &[u8]) -> String {
    input.escape_ascii().to_string()
}

/// What a run found: the input that panicked and how to get it back.
struct Finding {
    seed: u64,
    iteration: u64,
    input: Vec<u8>,
    message: String,
}

/// Runs `target` on mutated inputs until the budget is spent or an input panics.
fn drive(
    name: &str,
    corpus: &[Vec<u8>],
    seed: u64,
    budget: &Budget,
    target: &dyn Fn(&[u8]),
) -> (u64, Option<Finding>) {
    assert!(!corpus.is_empty(), "{name}: empty corpus");
    let name_hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let started = Instant::now();
    let mut iteration = 0;
    while budget.allows(iteration, started) {
        let mut rng = Rng::new(seed ^ name_hash ^ splitmix(iteration));
        // Every corpus entry is tried as it is first.
        let input = match corpus.get(iteration as usize) {
            Some(valid) => valid.clone(),
            None => mutate(corpus, &mut rng),
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return (
                iteration + 1,
                Some(Finding {
                    seed,
                    iteration,
                    input,
                    message,
                }),
            );
        }
        iteration += 1;
    }
    (iteration, None)
}

fn fuzz(name: &str, corpus: Vec<Vec<u8>>, target: impl Fn(&[u8])) {
    let seed = env_u64("FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default()
    });
    let (runs, finding) = drive(name, &corpus, seed, &Budget::from_env(), &target);
    eprintln!(
        "fuzz {name}: {runs} inputs, seed {seed}, corpus of {}",
        corpus.len()
    );
    if let Some(f) = finding {
        panic!(
            "fuzz target {name} panicked ({}) on iteration {} with FUZZ_SEED={}: replay with \
             FUZZ_SEED={} FUZZ_ITERATIONS={} cargo test --test fuzz {name}\ninput ({} bytes, escaped): {}",
            f.message,
            f.iteration,
            f.seed,
            f.seed,
            f.iteration + 1,
            f.input.len(),
            escaped(&f.input)
        );
    }
}

fn fixtures(dir: &str, extension: &str) -> Vec<Vec<u8>> {
    fn walk(dir: &Path, extension: &str, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, extension, out);
            } else if path.extension().is_some_and(|e| e == extension) {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(dir),
        extension,
        &mut paths,
    );
    paths.sort();
    paths
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        // The AsyncAPI meta-schema is big and no parser here reads it.
        .filter(|bytes| bytes.len() <= 64 * 1024)
        .collect()
}

fn text(bytes: &[u8]) -> String {
    // What the clients read: the body as text, invalid UTF-8 replaced.
    String::from_utf8_lossy(bytes).into_owned()
}

const COSTGUARD_OPERATIONS: [&str; 4] = ["CreateCart", "ModifyCart", "Checkout", "SubmitCart"];

fn costguard_soap_corpus() -> Vec<Vec<u8>> {
    let mut corpus = fixtures("tests/fixtures/costguard", "xml");
    let extra = [
        r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><env:Fault><env:Code><env:Value>env:Receiver</env:Value></env:Code><env:Reason><env:Text xml:lang="en">busy</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>"#,
        "<SubmitCartResponse><Result/><Messages><Message><Code>42</Code><Severity>Error</Severity><Text>Cart not checked out</Text></Message></Messages></SubmitCartResponse>",
        "<CheckoutResponse><Result><CartSummary><CartID><AuthenticatedKey>k</AuthenticatedKey><ID>11</ID></CartID><CartItemCount>1</CartItemCount><EstimatedMRC>0</EstimatedMRC><Subtotal>-11.99</Subtotal><TaxSubtotal/></CartSummary></Result><Messages/></CheckoutResponse>",
    ];
    corpus.extend(extra.iter().map(|s| s.as_bytes().to_vec()));
    corpus
}

#[test]
fn costguard_soap() {
    fuzz("costguard_soap", costguard_soap_corpus(), |bytes| {
        let xml = text(bytes);
        for operation in COSTGUARD_OPERATIONS {
            if let Ok(OrderResponse::Reply { result, messages }) =
                OrderResponse::parse(operation, &xml)
            {
                for m in &messages {
                    let _ = m.is_error();
                }
                let _ = soap::read_cart(result.as_ref());
                if let Ok(Some(summary)) = soap::read_summary(result.as_ref()) {
                    for scale in [0, 2, 6] {
                        let _ = summary.amount_due(scale);
                    }
                }
            }
        }
    });
}

fn costguard_rest_corpus() -> Vec<Vec<u8>> {
    [
        json!({"value":[{"ServiceNumber":"5555555555","CustomerID":10,"ServiceID":169053,"ServiceStatus":"Active"}]}),
        json!({"value":[{"serviceAdvancePayID":9001,"catalogID":18,"pricePointID":77,"description":"30 Day Unlimited","active":true}],"@odata.count":1}),
        json!({"renewedAdvancePayProductCount": 1, "serviceInformationItemID": 11}),
        json!({"errors":[{"field":"Customer","loggingNumber":500032,"message":"Not found"}]}),
        json!({
            "orderID": 7010, "customerID": 10, "orderTypeID": 1013, "registerID": 12,
            "status": "Submitted",
            "items": [{"serviceInformationItemID": 88443, "serviceID": 169053, "actionType": "AdvancePayRenewal"}],
            "tenders": [{"tenderInformationItemID": 17, "amount": "14.34", "tenderTypeID": 2, "tenderStatus": "Captured"}],
            "subtotal": "11.99", "taxSubtotal": "2.35", "receiptNumber": "STORE-12-0076"
        }),
    ]
    .iter()
    .map(|v| v.to_string().into_bytes())
    .collect()
}

#[test]
fn costguard_rest() {
    fuzz("costguard_rest", costguard_rest_corpus(), |bytes| {
        let _ = serde_json::from_slice::<Collection<ServiceNumberDetail>>(bytes);
        let _ = serde_json::from_slice::<Collection<FavoritePricePoint>>(bytes);
        let _ = serde_json::from_slice::<RenewAdvancePayResult>(bytes);
        if let Ok(errors) = serde_json::from_slice::<RestErrors>(bytes) {
            let _ = errors.summary();
        }
        if let Ok(order) = serde_json::from_slice::<OrderDetail>(bytes) {
            let amounts = order
                .tenders
                .iter()
                .map(|t| &t.amount)
                .chain(order.subtotal.iter())
                .chain(order.tax_subtotal.iter());
            let valid: Vec<_> = amounts.filter_map(|a| a.validate(2).ok()).collect();
            let _ = money::sum(valid);
        }
    });
}

/// A minimal answer for each Emersion operation the fixtures lack.
const EMERSION_ANSWERS: &[&str] = &[
    "<MyGetAccountFromUsernameAndPasswordResponse><AccountID>100001</AccountID></MyGetAccountFromUsernameAndPasswordResponse>",
    "<CheckUsernameAvailabilityResponse><Available>true</Available></CheckUsernameAvailabilityResponse>",
    "<CreateComplexAccountResponse><AccountID>250000</AccountID></CreateComplexAccountResponse>",
    "<AddNoteResponse><NoteID>5</NoteID></AddNoteResponse>",
    "<StartOrderResponse><AccountPresaleID>120000</AccountPresaleID></StartOrderResponse>",
    "<PerformGeneralPhoneSQResponse><AccountPresaleSQID>362000</AccountPresaleSQID><AvailableTransferType>New</AvailableTransferType></PerformGeneralPhoneSQResponse>",
    "<FindNWBSQAddressResponse><Addresses><Address><StreetNumber>1</StreetNumber><StreetName>George</StreetName><StreetType>St</StreetType><Suburb>Sydney</Suburb><State>NSW</State><Postcode>2000</Postcode><LocationID>LOC000000000001</LocationID></Address></Addresses></FindNWBSQAddressResponse>",
    "<SelectPackagePlanResponse><PackagePlan><ID>200100</ID><InternalName>a</InternalName><ExternalName>b</ExternalName><ServiceAllowances><ServiceAllowance><ServicePlanID>300100</ServicePlanID><ServiceTypeID>4362</ServiceTypeID><Quantity>1</Quantity><Mandatory>true</Mandatory></ServiceAllowance></ServiceAllowances></PackagePlan></SelectPackagePlanResponse>",
    "<GetServiceContactRequirementsResponse><ContactTypes><ContactType><TypeID>700001</TypeID><Name>Primary</Name><MinimumRequired>1</MinimumRequired><MaximumRequired>2</MaximumRequired></ContactType></ContactTypes></GetServiceContactRequirementsResponse>",
    "<SetServiceConfigurationResponse><Status>Success</Status></SetServiceConfigurationResponse>",
    "<SetServiceFeatureSetupResponse><Status>true</Status></SetServiceFeatureSetupResponse>",
    "<CreatePaymentResponse><paymentID>77</paymentID></CreatePaymentResponse>",
    "<serviceListResponse><serviceListItem><service_id>800000</service_id><service_identifier>0299998888</service_identifier><service_status>Preactive</service_status></serviceListItem></serviceListResponse>",
    "<serviceLookupResponse><serviceLookupItem><account_id>100001</account_id><service_identifier>0299998888</service_identifier><subscription_status_name>Preactive</subscription_status_name></serviceLookupItem></serviceLookupResponse>",
];

/// What the Emersion client does with a body: a Fault, or the operation's answer read.
fn emersion_read<O: Operation>(doc: &Element) {
    if let Some(reply) = doc.descendant(O::RESPONSE) {
        let _ = O::read(reply);
    }
}

#[test]
fn emersion() {
    let mut corpus = fixtures("tests/fixtures/emersion", "xml");
    corpus.extend(EMERSION_ANSWERS.iter().map(|s| {
        format!(
            r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="{}"><SOAP-ENV:Body>{s}</SOAP-ENV:Body></SOAP-ENV:Envelope>"#,
            wire::SOAP11_ENV_NS
        )
        .into_bytes()
    }));
    fuzz("emersion", corpus, |bytes| {
        let Ok(doc) = Element::parse(&text(bytes)) else {
            return;
        };
        if let Some(fault) = doc.descendant("Fault") {
            let fault = Fault::read(fault);
            let _ = fault.is_server();
        }
        emersion_read::<accounts::MyGetAccountFromUsernameAndPassword>(&doc);
        emersion_read::<accounts::CheckUsernameAvailability>(&doc);
        emersion_read::<accounts::CreateComplexAccount>(&doc);
        emersion_read::<wire::ServiceList>(&doc);
        emersion_read::<wire::ServiceLookup>(&doc);
        emersion_read::<wire::AddNote>(&doc);
        emersion_read::<wire::StartOrder>(&doc);
        emersion_read::<wire::PerformSimpleSQ>(&doc);
        emersion_read::<wire::PerformGeneralPhoneSQ>(&doc);
        emersion_read::<wire::FindNWBSQAddress>(&doc);
        emersion_read::<wire::PerformNWBSQ>(&doc);
        emersion_read::<wire::GetAvailablePackages>(&doc);
        emersion_read::<wire::SelectPackagePlan>(&doc);
        emersion_read::<wire::CompleteOrder>(&doc);
        emersion_read::<wire::GetTermsAndConditions>(&doc);
        emersion_read::<wire::CreatePayment>(&doc);
        emersion_read::<wire::GetServiceConfigurationRequirements>(&doc);
        emersion_read::<wire::GetServiceFeatureConfigurationRequirements>(&doc);
        emersion_read::<wire::SetServiceFeatureSetup>(&doc);
        emersion_read::<wire::GetServiceContactRequirements>(&doc);
        emersion_read::<wire::GetServiceIdentifierRequirements>(&doc);
        emersion_read::<wire::GetServiceIdentifierRealm>(&doc);
        emersion_read::<wire::SetServiceConfiguration>(&doc);
        emersion_read::<wire::SetServiceContacts>(&doc);
        emersion_read::<wire::SetServiceIdentifier>(&doc);
        let _ = doc.canonical();
    });
}

fn command_corpus() -> Vec<Vec<u8>> {
    fixtures("schemas/examples/commands", "json")
}

#[test]
fn command() {
    fuzz("command", command_corpus(), |bytes| {
        if let Ok(command) = Command::parse(bytes) {
            // What is accepted must survive the trip into a stage message and back.
            let again = serde_json::to_value(&command).map(Command::from_value);
            assert!(
                matches!(&again, Ok(Ok(c)) if *c == command),
                "accepted command does not round-trip: {again:?}"
            );
        }
        let _ = Command::sniff_id(bytes);
        let _ = Command::sniff_type(bytes);
    });
}

/// Stages of both workflows, for valid and mismatched stage headers.
const STAGES: &[&str] = &[
    "lookup_service",
    "check_favorites",
    "create_cart",
    "renew",
    "checkout",
    "tender",
    "submit",
    "start_order",
    "simple_sq",
    "complete_order",
    "create_payment",
    "nope",
    "",
];

fn stage_message_corpus() -> Vec<Vec<u8>> {
    let mut corpus = Vec::new();
    for body in command_corpus() {
        let Ok(command) = Command::parse(&body) else {
            continue;
        };
        let mut msg = StageMessage::first(command);
        corpus.push(msg.encode());
        msg.stage = "checkout".into();
        msg.attempt = 3;
        msg.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        msg.outputs.insert(
            "lookup_service".into(),
            json!({"customer_id": 10, "service_id": 169053, "service_status": "Active"}),
        );
        msg.outputs.insert(
            "create_cart".into(),
            json!({"cart": {"authenticated_key": "AuthKey", "id": 11}}),
        );
        msg.outputs.insert(
            "checkout".into(),
            json!({"subtotal": "11.99", "tax_subtotal": "2.35", "amount_due": "14.34"}),
        );
        corpus.push(msg.encode());
    }
    corpus
}

#[test]
fn stage_message() {
    fuzz("stage_message", stage_message_corpus(), |bytes| {
        let _ = StageMessage::decode(bytes, None);
        for stage in STAGES {
            if let Ok(msg) = StageMessage::decode(bytes, Some(stage)) {
                let _ = msg.headers();
                let _ = msg.encode();
            }
        }
        // A header that is not UTF-8 text arrives as whatever the body holds.
        let header = text(&bytes[..bytes.len().min(64)]);
        let _ = StageMessage::decode(bytes, Some(&header));
    });
}

#[test]
fn amounts() {
    let corpus = ODD_TEXT
        .iter()
        .chain(["14.34", "0.01", "999999999.99", "12", "-0.00"].iter())
        .map(|s| s.as_bytes().to_vec())
        .collect();
    fuzz("amounts", corpus, |bytes| {
        let text = text(bytes);
        for scale in [0, 2, 6, money::MAX_SCALE, u32::MAX] {
            if let Ok(value) = money::parse(&text, scale) {
                assert!(value.abs() < money::LIMIT, "{text:?} parsed to {value}");
                assert!(value.scale() <= scale, "{text:?} parsed to {value}");
                let _ = money::add(value, value);
                assert_eq!(money::check(value, scale), Ok(value), "{text:?}");
            }
        }
    });
}

/// The driver itself finds a panic, names the seed and gives the input back.
#[test]
fn a_panicking_target_is_reported_with_its_seed_and_input() {
    let corpus = vec![b"<a>ok</a>".to_vec()];
    let target = |bytes: &[u8]| assert!(!bytes.contains(&b'&'), "an ampersand");
    let budget = Budget::Iterations(100_000);
    let (_, finding) = drive("self_test", &corpus, 42, &budget, &target);
    let finding = finding.expect("the driver finds the ampersand");
    assert_eq!(finding.seed, 42);
    assert!(finding.input.contains(&b'&'));
    assert!(
        finding.message.contains("an ampersand"),
        "{}",
        finding.message
    );
    // The same seed and iteration give the same input.
    let replay = Budget::Iterations(finding.iteration + 1);
    let (_, again) = drive("self_test", &corpus, 42, &replay, &target);
    assert_eq!(again.map(|f| f.input), Some(finding.input));
}
