//! `advancepay.renew`: the AdvancePay renewal of seed 003, one stage per CostGuard call.
//! Every amount CostGuard answers is validated ([`amounts`]) for the currency's scale
//! before it is used or passed on; a bad one fails its stage permanently.

mod amounts;
mod lookup;
mod pay;
mod pinned_probe;
mod probe;
mod renew;
mod restore;

pub use lookup::{Eligible, ServiceFound};
pub use pay::{CheckedOut, Submitted, Tendered};
pub use renew::{CartCreated, Renewed};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::stage::{stages, Stage as _};
use super::{output_of, Outputs, Probe, StageError, Workflow, Workflows};
use crate::billing::costguard::CostGuardClient;
use crate::billing::Api;
use crate::contract::command::{Command, RenewData};

/// The renewal workflow.
pub struct Renewal;

stages! {
    /// The renewal's stages in the order they can run; the restore stages run only for a
    /// Hotlined service when the command asks for a restore.
    pub enum RenewalStage {
        LookupService = "lookup_service", Repeatable;
        CheckFavorites = "check_favorites", Repeatable;
        RestoreCreateCart = "restore_create_cart", NonIdempotent;
        RestoreAddItem = "restore_add_item", NonIdempotent + probe;
        RestoreCheckout = "restore_checkout", Repeatable;
        RestoreSubmit = "restore_submit", NonIdempotent + probe;
        CreateCart = "create_cart", NonIdempotent;
        Renew = "renew", NonIdempotent + probe;
        Checkout = "checkout", Repeatable;
        Tender = "tender", NonIdempotent + probe;
        Submit = "submit", NonIdempotent + probe;
    }
}

impl Workflow for Renewal {
    const NAME: &'static str = "advancepay_renewal";
    const COMMAND_TYPE: &'static str = "advancepay.renew";
    const API: Api = Api::CostGuard;
    const EXAMPLES: &'static [(&'static str, &'static str)] = &[
        (
            "advancepay.renew",
            include_str!("../../../schemas/examples/commands/advancepay.renew.json"),
        ),
        (
            "advancepay.renew.minimal",
            include_str!("../../../schemas/examples/commands/advancepay.renew.minimal.json"),
        ),
    ];

    type Data = RenewData;
    type Stage = RenewalStage;

    fn first_stage(_: &RenewData) -> RenewalStage {
        RenewalStage::LookupService
    }

    fn next(
        data: &RenewData,
        stage: RenewalStage,
        outputs: &Outputs,
        _: &Value,
    ) -> Result<Option<RenewalStage>, StageError> {
        use RenewalStage::*;
        Ok(match stage {
            LookupService => Some(CheckFavorites),
            CheckFavorites => {
                let found = output_of(outputs, LookupService)?;
                Some(if lookup::wants_restore(data, &found) {
                    RestoreCreateCart
                } else {
                    CreateCart
                })
            }
            RestoreCreateCart => Some(RestoreAddItem),
            RestoreAddItem => Some(RestoreCheckout),
            RestoreCheckout => Some(RestoreSubmit),
            RestoreSubmit => Some(CreateCart),
            CreateCart => Some(Renew),
            Renew => Some(Checkout),
            Checkout => Some(Tender),
            Tender => Some(Submit),
            Submit => None,
        })
    }

    async fn run(
        ctx: &Workflows,
        command: &Command,
        data: &RenewData,
        stage: RenewalStage,
        outputs: &Outputs,
    ) -> Result<Value, StageError> {
        use RenewalStage::*;
        let cx = Ctx::new(ctx, command, data, stage, outputs)?;
        match stage {
            LookupService => lookup::lookup_service(&cx).await,
            CheckFavorites => lookup::check_favorites(&cx).await,
            RestoreCreateCart => restore::create_cart(&cx).await,
            RestoreAddItem => restore::add_item(&cx).await,
            RestoreCheckout => restore::checkout(&cx).await,
            RestoreSubmit => restore::submit(&cx).await,
            CreateCart => renew::create_cart(&cx).await,
            Renew => renew::renew(&cx).await,
            Checkout => pay::checkout(&cx).await,
            Tender => pay::tender(&cx).await,
            Submit => pay::submit(&cx).await,
        }
    }

    async fn probe(
        ctx: &Workflows,
        command: &Command,
        data: &RenewData,
        stage: RenewalStage,
        outputs: &Outputs,
    ) -> Result<Probe<Value>, StageError> {
        probe::probe(&Ctx::new(ctx, command, data, stage, outputs)?, stage).await
    }

    fn summary(outputs: &Value) -> Option<String> {
        let amount = outputs[RenewalStage::Tender.as_str()]["amount"].as_str()?;
        Some(format!("tendered {amount}"))
    }
}

/// What a stage works with.
struct Ctx<'a> {
    /// CostGuard, its calls tagged with the command and stage.
    client: CostGuardClient,
    /// The command's environment, else the worker's default.
    env: &'a str,
    /// Decimal places of the currency.
    scale: u32,
    /// Whether the probes may use the pinned, undocumented order read.
    pinned_order_probes: bool,
    data: &'a RenewData,
    outputs: &'a Outputs,
}

impl<'a> Ctx<'a> {
    fn new(
        ctx: &'a Workflows,
        command: &Command,
        data: &'a RenewData,
        stage: RenewalStage,
        outputs: &'a Outputs,
    ) -> Result<Self, StageError> {
        Ok(Ctx {
            client: ctx.costguard(command, stage.as_str())?,
            env: data
                .environment
                .as_deref()
                .unwrap_or(&ctx.costguard_environment),
            scale: ctx.currency_scale,
            pinned_order_probes: ctx.costguard_pinned_order_probes,
            data,
            outputs,
        })
    }

    /// An earlier stage's output.
    fn output<T: DeserializeOwned>(&self, stage: RenewalStage) -> Result<T, StageError> {
        output_of(self.outputs, stage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::stage::{assert_well_formed, Stage};
    use crate::workflow::Effect::{self, *};
    use serde_json::json;

    #[test]
    fn stages_keep_their_names_effects_and_probes() {
        assert_well_formed::<RenewalStage>();
        let table: Vec<(&str, Effect, bool)> = RenewalStage::ALL
            .iter()
            .map(|s| (s.as_str(), s.effect(), s.has_probe()))
            .collect();
        assert_eq!(
            table,
            [
                ("lookup_service", Repeatable, false),
                ("check_favorites", Repeatable, false),
                ("restore_create_cart", NonIdempotent, false),
                ("restore_add_item", NonIdempotent, true),
                ("restore_checkout", Repeatable, false),
                ("restore_submit", NonIdempotent, true),
                ("create_cart", NonIdempotent, false),
                ("renew", NonIdempotent, true),
                ("checkout", Repeatable, false),
                ("tender", NonIdempotent, true),
                ("submit", NonIdempotent, true),
            ]
        );
    }

    #[test]
    fn next_follows_the_service_status_and_the_restore_request() {
        use RenewalStage::*;
        let data = |restore: bool| -> RenewData {
            let mut data = json!({"service_number": "5555555555", "order_type_id": 1,
                "register_id": 12, "tender_type_id": 2});
            if restore {
                data["restore"] = json!({"order_type_id": 1013, "reason_id": 4});
            }
            serde_json::from_value(data).unwrap()
        };
        let found = |status: &str| -> Outputs {
            [(
                "lookup_service".to_string(),
                json!({"customer_id": 1, "service_id": 2, "service_status": status}),
            )]
            .into()
        };
        let next = |data: &RenewData, stage, outputs: &Outputs| {
            Renewal::next(data, stage, outputs, &Value::Null).unwrap()
        };
        for (restore, status, after_favorites) in [
            (true, "Hotlined", RestoreCreateCart),
            (true, "hotlined", RestoreCreateCart),
            (true, "Active", CreateCart),
            (false, "Hotlined", CreateCart),
        ] {
            let outputs = found(status);
            assert_eq!(
                next(&data(restore), CheckFavorites, &outputs),
                Some(after_favorites),
                "restore {restore}, {status}"
            );
        }
        let outputs = found("Active");
        for (stage, expected) in [
            (LookupService, Some(CheckFavorites)),
            (RestoreCreateCart, Some(RestoreAddItem)),
            (RestoreAddItem, Some(RestoreCheckout)),
            (RestoreCheckout, Some(RestoreSubmit)),
            (RestoreSubmit, Some(CreateCart)),
            (CreateCart, Some(Renew)),
            (Renew, Some(Checkout)),
            (Checkout, Some(Tender)),
            (Tender, Some(Submit)),
            (Submit, None),
        ] {
            assert_eq!(next(&data(true), stage, &outputs), expected, "{stage}");
        }
        let err = Renewal::next(&data(true), CheckFavorites, &Outputs::new(), &Value::Null);
        assert!(err
            .unwrap_err()
            .message
            .contains("lacks the output of lookup_service"));
    }

    #[test]
    fn the_summary_names_the_tender() {
        let outputs = json!({"tender": {"amount": "14.34", "receipt_number": "R1"}});
        assert_eq!(
            Renewal::summary(&outputs).as_deref(),
            Some("tendered 14.34")
        );
        assert_eq!(Renewal::summary(&json!({})), None);
    }
}
