//! `service_order.submit`: Emersion onboarding in seed 000's order, one stage per call
//! (the Set calls of a stage loop over the package's services for the ordered type).

mod account;
mod complete;
mod configure;
mod order;
mod package;
mod probe;
mod requirements;
mod services;
mod sq;
mod terms;

pub use account::{AccountResolved, UsernameChecked};
pub use complete::OrderCompleted;
pub use order::OrderStarted;
pub use package::PackageChosen;
pub use requirements::{check, Requirements, ServiceRequirements};
pub use services::{PackageService, Values};
pub use sq::{AddressFound, Qualified, ServicesQualified};
pub use terms::TermsFound;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::stage::{stages, Stage as _};
use super::{decode, output_of, Outputs, Probe, StageError, Workflow, Workflows};
use crate::billing::emersion::EmersionClient;
use crate::billing::Api;
use crate::contract::command::{Command, ServiceOrderData, SqRequest};

/// The sign-up workflow.
pub struct ServiceOrder;

stages! {
    /// The sign-up's stages in the order they can run; which run depends on the command
    /// (account, presale, SQ kind, what there is to set, note, payment).
    pub enum ServiceOrderStage {
        CheckUsername = "check_username", Repeatable;
        CreateAccount = "create_account", NonIdempotent + probe;
        ResolveAccount = "resolve_account", Repeatable;
        StartOrder = "start_order", NonIdempotent;
        // A new SQ overrides the presale's earlier one until a package plan is selected
        // (API-FINDINGS.md: "Service Qualification id #X is not valid for deletion" after
        // it), and only the stages after it use its id: repeatable before select_package.
        SimpleSq = "simple_sq", Repeatable;
        PhoneSq = "phone_sq", Repeatable;
        FindAddress = "find_address", Repeatable;
        NwbSq = "nwb_sq", Repeatable;
        GetPackages = "get_packages", Repeatable;
        // The SQs of the package's other service types, before the plan is selected, for
        // the same reason as the SQ stages above.
        QualifyServices = "qualify_services", Repeatable;
        // Reconciled by sending it again: the platform refuses a repeat.
        SelectPackage = "select_package", NonIdempotent + probe;
        GetRequirements = "get_requirements", Repeatable;
        // Set calls replace what was set before: repeatable.
        SetConfiguration = "set_configuration", Repeatable;
        SetFeatures = "set_features", Repeatable;
        SetContacts = "set_contacts", Repeatable;
        SetIdentifier = "set_identifier", Repeatable;
        GetTerms = "get_terms", Repeatable;
        // The account's services before complete_order, which is reconciled against them.
        ListServices = "list_services", Repeatable;
        CompleteOrder = "complete_order", NonIdempotent + probe;
        AddNote = "add_note", NonIdempotent;
        CreatePayment = "create_payment", NonIdempotent;
    }
}

impl Workflow for ServiceOrder {
    const NAME: &'static str = "service_order";
    const COMMAND_TYPE: &'static str = "service_order.submit";
    const API: Api = Api::Emersion;
    const EXAMPLES: &'static [(&'static str, &'static str)] = &[
        (
            "service_order.submit.simple",
            include_str!("../../../schemas/examples/commands/service_order.submit.simple.json"),
        ),
        (
            "service_order.submit.general_phone",
            include_str!(
                "../../../schemas/examples/commands/service_order.submit.general_phone.json"
            ),
        ),
        (
            "service_order.submit.nwb",
            include_str!("../../../schemas/examples/commands/service_order.submit.nwb.json"),
        ),
        (
            "service_order.submit.bundle",
            include_str!("../../../schemas/examples/commands/service_order.submit.bundle.json"),
        ),
        (
            "service_order.submit.new_customer",
            include_str!(
                "../../../schemas/examples/commands/service_order.submit.new_customer.json"
            ),
        ),
    ];

    type Data = ServiceOrderData;
    type Stage = ServiceOrderStage;

    fn first_stage(data: &ServiceOrderData) -> ServiceOrderStage {
        let account = &data.account;
        match (&account.new, account.account_id) {
            (Some(new), _) if new.portal_login.is_some() => ServiceOrderStage::CheckUsername,
            (Some(_), _) => ServiceOrderStage::CreateAccount,
            (None, None) => ServiceOrderStage::ResolveAccount,
            (None, Some(_)) => after_account(data),
        }
    }

    fn next(
        data: &ServiceOrderData,
        stage: ServiceOrderStage,
        outputs: &Outputs,
        output: &Value,
    ) -> Result<Option<ServiceOrderStage>, StageError> {
        use ServiceOrderStage::*;
        Ok(match stage {
            CheckUsername => Some(CreateAccount),
            CreateAccount | ResolveAccount => Some(after_account(data)),
            StartOrder => Some(sq_stage(data)),
            FindAddress => Some(NwbSq),
            SimpleSq | PhoneSq | NwbSq => Some(GetPackages),
            GetPackages => {
                let chosen: PackageChosen = decode(stage.as_str(), output)?;
                if services::other_types(data, &chosen.package).is_empty() {
                    Some(SelectPackage)
                } else {
                    Some(QualifyServices)
                }
            }
            QualifyServices => Some(SelectPackage),
            SelectPackage => Some(GetRequirements),
            GetRequirements | SetConfiguration | SetFeatures | SetContacts | SetIdentifier => {
                let chosen: PackageChosen = output_of(outputs, GetPackages)?;
                let services = services::services_of(data, &chosen.package)?;
                let reqs: Requirements = if stage == GetRequirements {
                    decode(stage.as_str(), output)?
                } else {
                    output_of(outputs, GetRequirements)?
                };
                Some(next_set_stage(stage, &services, &reqs))
            }
            GetTerms => Some(ListServices),
            ListServices => Some(CompleteOrder),
            CompleteOrder => after_complete(data),
            AddNote => data.payment.as_ref().map(|_| CreatePayment),
            CreatePayment => None,
        })
    }

    async fn run(
        ctx: &Workflows,
        command: &Command,
        data: &ServiceOrderData,
        stage: ServiceOrderStage,
        outputs: &Outputs,
    ) -> Result<Value, StageError> {
        use ServiceOrderStage::*;
        check_payment(data, ctx.currency_scale)?;
        let cx = Ctx::new(ctx, command, data, stage, outputs)?;
        match stage {
            CheckUsername => account::check_username(&cx).await,
            CreateAccount => account::create_account(&cx).await,
            ResolveAccount => account::resolve_account(&cx).await,
            StartOrder => order::start_order(&cx).await,
            SimpleSq => sq::simple_sq(&cx).await,
            PhoneSq => sq::phone_sq(&cx).await,
            FindAddress => sq::find_address(&cx).await,
            NwbSq => sq::nwb_sq(&cx).await,
            GetPackages => package::get_packages(&cx).await,
            QualifyServices => sq::qualify_services(&cx).await,
            SelectPackage => package::select_package(&cx).await,
            GetRequirements => requirements::get_requirements(&cx).await,
            SetConfiguration => configure::set_configuration(&cx).await,
            SetFeatures => configure::set_features(&cx).await,
            SetContacts => configure::set_contacts(&cx).await,
            SetIdentifier => configure::set_identifier(&cx).await,
            GetTerms => terms::get_terms(&cx).await,
            ListServices => complete::list_services(&cx).await,
            CompleteOrder => complete::complete_order(&cx).await,
            AddNote => complete::add_note(&cx).await,
            CreatePayment => complete::create_payment(&cx).await,
        }
    }

    async fn probe(
        ctx: &Workflows,
        command: &Command,
        data: &ServiceOrderData,
        stage: ServiceOrderStage,
        outputs: &Outputs,
    ) -> Result<Probe<Value>, StageError> {
        probe::probe(&Ctx::new(ctx, command, data, stage, outputs)?, stage).await
    }

    fn summary(outputs: &Value) -> Option<String> {
        let order = complete::summary(&outputs[ServiceOrderStage::CompleteOrder.as_str()])?;
        Some(
            match outputs[ServiceOrderStage::CreateAccount.as_str()]["account_id"].as_i64() {
                Some(account_id) => format!("new account {account_id}, {order}"),
                None => order,
            },
        )
    }
}

/// A resumed order starts after what the command says the platform holds: its presale,
/// and its SQ.
fn after_account(data: &ServiceOrderData) -> ServiceOrderStage {
    match (data.account_presale_id, data.account_presale_sq_id) {
        (Some(_), Some(_)) => ServiceOrderStage::GetPackages,
        (Some(_), None) => sq_stage(data),
        (None, _) => ServiceOrderStage::StartOrder,
    }
}

fn sq_stage(data: &ServiceOrderData) -> ServiceOrderStage {
    match &data.sq {
        SqRequest::Simple => ServiceOrderStage::SimpleSq,
        SqRequest::GeneralPhone { .. } => ServiceOrderStage::PhoneSq,
        SqRequest::Nwb { fnn: Some(_), .. } => ServiceOrderStage::NwbSq,
        SqRequest::Nwb { .. } => ServiceOrderStage::FindAddress,
    }
}

/// The next Set stage after `stage` that has something to set, else `get_terms`.
fn next_set_stage(
    stage: ServiceOrderStage,
    services: &[PackageService<'_>],
    reqs: &Requirements,
) -> ServiceOrderStage {
    use ServiceOrderStage::*;
    let any_req = |has: fn(&ServiceRequirements) -> bool| reqs.services.iter().any(has);
    let any_value = |has: fn(&Values<'_>) -> bool| services.iter().any(|s| has(&s.values));
    let wanted = [
        (
            SetConfiguration,
            any_value(|v| !v.configuration.is_empty()) || any_req(|s| !s.properties.is_empty()),
        ),
        (
            SetFeatures,
            any_value(|v| v.features.iter().any(|f| f.setting().is_some())),
        ),
        (
            SetContacts,
            any_value(|v| !v.contacts.is_empty()) || any_req(|s| !s.contacts.is_empty()),
        ),
        (SetIdentifier, any_value(|v| v.identifier.is_some())),
    ];
    let start = wanted
        .iter()
        .position(|(s, _)| *s == stage)
        .map(|i| i + 1)
        .unwrap_or(0);
    wanted[start..]
        .iter()
        .find(|(_, needed)| *needed)
        .map(|(s, _)| *s)
        .unwrap_or(GetTerms)
}

fn after_complete(data: &ServiceOrderData) -> Option<ServiceOrderStage> {
    if data.note.is_some() {
        Some(ServiceOrderStage::AddNote)
    } else if data.payment.is_some() {
        Some(ServiceOrderStage::CreatePayment)
    } else {
        None
    }
}

/// The command parser checked the payment amount for everything but the currency,
/// which only the worker knows: an amount with more places fails before any call.
fn check_payment(data: &ServiceOrderData, scale: u32) -> Result<(), StageError> {
    match &data.payment {
        Some(payment) => crate::money::check(payment.amount, scale)
            .map(drop)
            .map_err(|e| StageError::permanent(format!("data.payment.amount: {e}"))),
        None => Ok(()),
    }
}

/// What a stage works with.
struct Ctx<'a> {
    /// Emersion, its calls tagged with the command and stage.
    client: EmersionClient,
    data: &'a ServiceOrderData,
    outputs: &'a Outputs,
}

impl<'a> Ctx<'a> {
    fn new(
        ctx: &Workflows,
        command: &Command,
        data: &'a ServiceOrderData,
        stage: ServiceOrderStage,
        outputs: &'a Outputs,
    ) -> Result<Self, StageError> {
        Ok(Ctx {
            client: ctx.emersion(command, stage.as_str())?,
            data,
            outputs,
        })
    }

    /// An earlier stage's output.
    fn output<T: DeserializeOwned>(&self, stage: ServiceOrderStage) -> Result<T, StageError> {
        output_of(self.outputs, stage)
    }

    /// The command's account, else the one `create_account` made or `resolve_account`
    /// found.
    fn account_id(&self) -> Result<i64, StageError> {
        use ServiceOrderStage::{CreateAccount, ResolveAccount};
        match self.data.account.account_id {
            Some(id) => Ok(id),
            None if self.data.account.new.is_some() => self
                .output::<AccountResolved>(CreateAccount)
                .map(|a| a.account_id),
            None => self
                .output::<AccountResolved>(ResolveAccount)
                .map(|a| a.account_id),
        }
    }

    /// The command's presale, else the one `start_order` started.
    fn presale_id(&self) -> Result<i64, StageError> {
        match self.data.account_presale_id {
            Some(id) => Ok(id),
            None => self
                .output::<OrderStarted>(ServiceOrderStage::StartOrder)
                .map(|o| o.account_presale_id),
        }
    }

    /// The SQ of the package's services of `service_type_id`: the ordered type's, or the
    /// one `qualify_services` made.
    fn sq_for(&self, service_type_id: i64) -> Result<i64, StageError> {
        if service_type_id == self.data.service_type_id {
            return self.sq_id();
        }
        self.output::<ServicesQualified>(ServiceOrderStage::QualifyServices)?
            .services
            .iter()
            .find(|s| s.service_type_id == service_type_id)
            .map(|s| s.account_presale_sq_id)
            .ok_or_else(|| {
                StageError::permanent(format!(
                    "qualify_services made no SQ for service type {service_type_id}"
                ))
            })
    }

    /// The id of the SQ that ran, whichever kind it was, else the command's.
    fn sq_id(&self) -> Result<i64, StageError> {
        use ServiceOrderStage::*;
        [SimpleSq, PhoneSq, NwbSq]
            .into_iter()
            .find(|s| self.outputs.contains_key(s.as_str()))
            .map(|s| self.output::<Qualified>(s).map(|q| q.account_presale_sq_id))
            .or_else(|| self.data.account_presale_sq_id.map(Ok))
            .unwrap_or_else(|| Err(StageError::permanent("stage message lacks the SQ output")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::stage::{assert_well_formed, Stage};
    use crate::workflow::Effect::{self, *};
    use serde_json::json;

    pub(super) fn order(extra: Value) -> ServiceOrderData {
        let mut data = json!({
            "account": {"account_id": 100001},
            "service_type_id": 100100,
            "sq": {"kind": "simple"},
            "package": {"plan_id": 200100}
        });
        if let (Some(base), Some(extra)) = (data.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(data).unwrap()
    }

    #[test]
    fn stages_keep_their_names_effects_and_probes() {
        assert_well_formed::<ServiceOrderStage>();
        let table: Vec<(&str, Effect, bool)> = ServiceOrderStage::ALL
            .iter()
            .map(|s| (s.as_str(), s.effect(), s.has_probe()))
            .collect();
        assert_eq!(
            table,
            [
                ("check_username", Repeatable, false),
                ("create_account", NonIdempotent, true),
                ("resolve_account", Repeatable, false),
                ("start_order", NonIdempotent, false),
                ("simple_sq", Repeatable, false),
                ("phone_sq", Repeatable, false),
                ("find_address", Repeatable, false),
                ("nwb_sq", Repeatable, false),
                ("get_packages", Repeatable, false),
                ("qualify_services", Repeatable, false),
                ("select_package", NonIdempotent, true),
                ("get_requirements", Repeatable, false),
                ("set_configuration", Repeatable, false),
                ("set_features", Repeatable, false),
                ("set_contacts", Repeatable, false),
                ("set_identifier", Repeatable, false),
                ("get_terms", Repeatable, false),
                ("list_services", Repeatable, false),
                ("complete_order", NonIdempotent, true),
                ("add_note", NonIdempotent, false),
                ("create_payment", NonIdempotent, false),
            ]
        );
    }

    #[test]
    fn the_first_stage_follows_the_account_presale_and_sq() {
        use ServiceOrderStage::*;
        let nwb = json!({"kind": "nwb", "address": {"street_name": "George"}});
        let fnn = json!({"kind": "nwb", "fnn": "0299998888"});
        let phone = json!({"kind": "general_phone", "phone_number": "0299998888"});
        let login = json!({"username": "u", "password": "p"});
        let new = json!({"first_name": "J", "last_name": "C", "email": "j@c"});
        let mut new_with_login = new.clone();
        new_with_login["portal_login"] = json!({"username": "jc", "password": "p"});
        for (extra, first) in [
            (json!({}), StartOrder),
            (json!({"account": login}), ResolveAccount),
            (json!({"account": {"new": new}}), CreateAccount),
            (json!({"account": {"new": new_with_login}}), CheckUsername),
            (json!({"account_presale_id": 7}), SimpleSq),
            (json!({"account_presale_id": 7, "sq": phone}), PhoneSq),
            (json!({"account_presale_id": 7, "sq": nwb}), FindAddress),
            (json!({"account_presale_id": 7, "sq": fnn}), NwbSq),
            (
                json!({"account_presale_id": 7, "account_presale_sq_id": 8}),
                GetPackages,
            ),
        ] {
            assert_eq!(
                ServiceOrder::first_stage(&order(extra.clone())),
                first,
                "{extra}"
            );
        }
    }

    /// What comes after `stage` for a command with `extra` data, `reqs` being the output
    /// of get_requirements (its own output, and in the slip for the Set stages).
    fn next_of(stage: ServiceOrderStage, extra: &Value, reqs: &Value) -> Option<ServiceOrderStage> {
        let package = package_of(&[(300100, 100100)]);
        let outputs: Outputs = [
            ("get_requirements".to_string(), reqs.clone()),
            ("get_packages".to_string(), package.clone()),
        ]
        .into();
        let output = match stage {
            ServiceOrderStage::GetRequirements => reqs.clone(),
            ServiceOrderStage::GetPackages => package,
            _ => json!({}),
        };
        ServiceOrder::next(&order(extra.clone()), stage, &outputs, &output).unwrap()
    }

    /// get_packages' output: a package of these (service plan, service type) allowances.
    fn package_of(allowances: &[(i64, i64)]) -> Value {
        let allowances: Vec<Value> = allowances
            .iter()
            .map(|(plan, service_type)| {
                json!({"service_plan_id": plan, "service_type_id": service_type,
                       "quantity": 1, "mandatory": true})
            })
            .collect();
        json!({"package": {"id": 200100, "internal_name": "p", "external_name": "P",
                           "service_allowances": allowances}})
    }

    #[test]
    fn a_package_with_other_service_types_qualifies_them_before_the_selection() {
        use ServiceOrderStage::*;
        let bundle = package_of(&[(300100, 100100), (300300, 100300)]);
        let data = order(json!({}));
        let next = ServiceOrder::next(&data, GetPackages, &Outputs::new(), &bundle).unwrap();
        assert_eq!(next, Some(QualifyServices));
        let next = ServiceOrder::next(&data, QualifyServices, &Outputs::new(), &json!({}));
        assert_eq!(next.unwrap(), Some(SelectPackage));
    }

    #[test]
    fn next_is_one_table() {
        use ServiceOrderStage::*;
        let none = &json!({"services": []});
        let props = &json!({"services": [{"service_plan_id": 1,
            "properties": [{"type_id": 5, "name": "n", "value_type": "String", "mandatory": true, "value_list": []}],
            "features": [], "contacts": [], "identifiers": [], "realms": []}]});
        let plain = json!({});
        let presale = json!({"account_presale_id": 7});
        let phone = json!({"sq": {"kind": "general_phone", "phone_number": "1"}});
        let nwb = json!({"sq": {"kind": "nwb", "address": {}}});
        let features = json!({"features": [{"type_id": 5}]});
        let contacts = json!({"contacts": [{"type_id": 7, "first_name": "J", "last_name": "C"}]});
        let identifier = json!({"identifier": {"username": "u", "realm": "r", "password": "p"}});
        let payment = json!({"transaction_category": "Credit Card", "reference": "r",
            "amount": "1", "transaction_date": "2026-11-22"});
        let note = json!({"subject": "s", "detail": "d"});
        let (noted, paid) = (json!({"note": note}), json!({"payment": payment}));
        let both = json!({"note": note, "payment": payment});
        for (stage, extra, reqs, expected) in [
            (CheckUsername, &plain, none, Some(CreateAccount)),
            (CreateAccount, &plain, none, Some(StartOrder)),
            (CreateAccount, &presale, none, Some(SimpleSq)),
            (ResolveAccount, &plain, none, Some(StartOrder)),
            (ResolveAccount, &presale, none, Some(SimpleSq)),
            (StartOrder, &plain, none, Some(SimpleSq)),
            (StartOrder, &phone, none, Some(PhoneSq)),
            (StartOrder, &nwb, none, Some(FindAddress)),
            (FindAddress, &nwb, none, Some(NwbSq)),
            (SimpleSq, &plain, none, Some(GetPackages)),
            (PhoneSq, &phone, none, Some(GetPackages)),
            (NwbSq, &nwb, none, Some(GetPackages)),
            (GetPackages, &plain, none, Some(SelectPackage)),
            (SelectPackage, &plain, none, Some(GetRequirements)),
            (GetRequirements, &plain, none, Some(GetTerms)),
            (GetRequirements, &plain, props, Some(SetConfiguration)),
            (GetRequirements, &contacts, none, Some(SetContacts)),
            (SetConfiguration, &contacts, props, Some(SetContacts)),
            (SetConfiguration, &identifier, props, Some(SetIdentifier)),
            (SetContacts, &plain, props, Some(GetTerms)),
            (SetIdentifier, &identifier, props, Some(GetTerms)),
            (GetRequirements, &features, none, Some(SetFeatures)),
            (SetFeatures, &features, props, Some(GetTerms)),
            (GetTerms, &plain, none, Some(ListServices)),
            (ListServices, &plain, none, Some(CompleteOrder)),
            (CompleteOrder, &plain, none, None),
            (CompleteOrder, &noted, none, Some(AddNote)),
            (CompleteOrder, &paid, none, Some(CreatePayment)),
            (AddNote, &noted, none, None),
            (AddNote, &both, none, Some(CreatePayment)),
            (CreatePayment, &paid, none, None),
        ] {
            assert_eq!(
                next_of(stage, extra, reqs),
                expected,
                "{stage} with {extra}"
            );
        }
        let err = ServiceOrder::next(
            &order(plain.clone()),
            SetFeatures,
            &Outputs::new(),
            &json!({}),
        );
        assert!(err
            .unwrap_err()
            .message
            .contains("lacks the output of get_packages"));
        let packaged: Outputs =
            [("get_packages".to_string(), package_of(&[(300100, 100100)]))].into();
        let err = ServiceOrder::next(&order(plain), SetFeatures, &packaged, &json!({}));
        assert!(err
            .unwrap_err()
            .message
            .contains("lacks the output of get_requirements"));
    }

    #[test]
    fn the_summary_names_the_presale_and_its_services() {
        let outputs = json!({"complete_order": {"account_presale_id": 9, "status": "true",
            "services": [{"service_id": 3, "service_identifier": "0299998888", "status": "Preactive"}]}});
        assert_eq!(
            ServiceOrder::summary(&outputs).as_deref(),
            Some("presale 9, services 3 (0299998888) Preactive")
        );
        assert_eq!(ServiceOrder::summary(&json!({})), None);
        let mut created = outputs.clone();
        created["create_account"] = json!({"account_id": 250001});
        assert_eq!(
            ServiceOrder::summary(&created).as_deref(),
            Some("new account 250001, presale 9, services 3 (0299998888) Preactive")
        );
    }
}
