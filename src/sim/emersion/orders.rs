//! The Orders service rules: StartOrder, the three SQ methods (with seed 004's validation in
//! its order), package selection and CompleteOrder. Every call validates first and changes
//! the state only once it is accepted, so a refused call leaves no trace.

use super::catalog::{Address, CheckType, PackagePlan};
use super::*;

/// Longest purchase order (and external contract identifier) StartOrder takes.
const PURCHASE_ORDER_LIMIT: usize = 50;

pub(super) struct NewOrder {
    pub(super) account_id: i64,
    pub(super) purchase_order: Option<String>,
    pub(super) promo_code: Option<String>,
    pub(super) external_contract_identifier: Option<String>,
    pub(super) cumulus_user_id: Option<i64>,
}

/// FindNWBSQAddress's AddressDetails; absent elements are empty.
pub(super) struct AddressQuery {
    pub(super) street_number: String,
    pub(super) street_name: String,
    pub(super) suburb: String,
    pub(super) state: String,
    pub(super) postcode: String,
}

impl AddressQuery {
    /// Case-insensitive on suburb, state and postcode, and on street name and number when
    /// given; the street type is not compared, as clients spell it in many ways.
    fn matches(&self, address: &Address) -> bool {
        let same = |given: &str, known: &str| given.trim().eq_ignore_ascii_case(known);
        let same_if_given =
            |given: &str, known: &str| given.trim().is_empty() || same(given, known);
        same(&self.suburb, address.suburb)
            && same(&self.state, address.state)
            && same(&self.postcode, address.postcode)
            && same_if_given(&self.street_name, address.street_name)
            && same_if_given(&self.street_number, address.street_number)
    }
}

impl SqMethod {
    fn accepts(&self, check: CheckType) -> bool {
        match self {
            SqMethod::Simple => matches!(check, CheckType::NoSq | CheckType::AutoIdentifier),
            SqMethod::GeneralPhone { .. } => check == CheckType::GeneralPhone,
            SqMethod::Nwb { .. } => check == CheckType::Nwb,
        }
    }

    /// The service identifier the SQ names: the phone number or the FNN.
    fn identifier(&self) -> Option<String> {
        match self {
            SqMethod::GeneralPhone { identifier, .. } => identifier.clone(),
            SqMethod::Nwb { fnn, .. } => fnn.clone(),
            SqMethod::Simple => None,
        }
    }

    /// How Emersion names the method in "is not qualified for … SQ".
    fn label(&self) -> &'static str {
        match self {
            SqMethod::Simple => "Simple",
            SqMethod::GeneralPhone { .. } => "General Phone",
            SqMethod::Nwb { .. } => "NWB",
        }
    }
}

fn not_qualified(service_type_id: i64, label: &str) -> Rejection {
    format!("Service type id #{service_type_id} is not qualified for {label} SQ").into()
}

fn is_phone_number(number: &str) -> bool {
    number.len() == 10 && number.bytes().all(|b| b.is_ascii_digit())
}

/// The TransferType an SQ names; whether it is a churn. The texts are
/// GetServiceConfigurationRequirements' (W), the SQ pages show none.
fn check_transfer_type(transfer_type: &str) -> Result<bool, Rejection> {
    match transfer_type.trim().to_ascii_uppercase().as_str() {
        "" => Err("Missing Transfer Type".into()),
        "NEW" => Ok(false),
        "CHURN" => Ok(true),
        _ => Err("Invalid Transfer Type. Valid input: 'NEW', 'CHURN' or 'INTERNAL CHURN'".into()),
    }
}

fn is_postcode(postcode: &str) -> bool {
    postcode.len() == 4 && postcode.bytes().all(|b| b.is_ascii_digit())
}

impl Emersion {
    pub(super) fn start_order(&mut self, order: NewOrder) -> Result<i64, Rejection> {
        let account_id = order.account_id;
        if account_id < 1 {
            return Err("Missing account id".into());
        }
        if account_id < SIX_DIGITS {
            return Err("Invalid account id".into());
        }
        // "Account does not exist or account belong to other provider" (W StartOrder).
        let account = self
            .accounts
            .get(&account_id)
            .filter(|a| !a.foreign)
            .ok_or("Undefined account")?;
        if account.status != Some(AccountStatus::Active) {
            return Err("Account is currently not active".into());
        }
        if let Some(restriction) = account.restriction_id {
            return Err(format!("You will not able to create new order until the restriction in place gets lifted. Restriction Id #'{restriction}'").into());
        }
        let length = |text: &Option<String>| text.as_deref().map_or(0, |t| t.chars().count());
        if length(&order.purchase_order) > PURCHASE_ORDER_LIMIT {
            return Err("Purchase order length exceed limit".into());
        }
        if length(&order.external_contract_identifier) > PURCHASE_ORDER_LIMIT {
            return Err("External contract identifier length exceed limit".into());
        }
        if let Some(user) = order.cumulus_user_id {
            if user < SIX_DIGITS {
                return Err("Invalid cumulus user id".into());
            }
            // The simulator's accounts have no staff or agent users.
            return Err("Undefined cumulus user".into());
        }
        let presale_id = next(&mut self.ids.presale);
        let presale = Presale {
            purchase_order: order.purchase_order,
            promo_code: order.promo_code,
            ..Presale::open(presale_id, account_id)
        };
        self.presales.insert(presale_id, presale);
        Ok(presale_id)
    }

    pub(super) fn presale(&self, presale_id: i64) -> Result<&Presale, Rejection> {
        self.presales
            .get(&presale_id)
            .ok_or_else(|| "Undefined account presale".into())
    }

    pub(super) fn presale_mut(&mut self, presale_id: i64) -> Result<&mut Presale, Rejection> {
        self.presales
            .get_mut(&presale_id)
            .ok_or_else(|| "Undefined account presale".into())
    }

    /// Seed 004's "SP account validation", applied to the account that owns the presale.
    fn check_may_order(&self, account_id: i64) -> Result<(), Rejection> {
        let account = self.accounts.get(&account_id).ok_or("Undefined account")?;
        let status = account.status.ok_or("Undefined account status")?;
        let account_type = account.account_type.ok_or("Undefined account type")?;
        if account_type == AccountType::Wholesale {
            return Err("Account Type is not eligible to create order".into());
        }
        if account.can_not_order {
            return Err("Order creation is restricted for this account".into());
        }
        if matches!(status, AccountStatus::Suspended | AccountStatus::Restricted) {
            return Err(format!(
                "This account is '{}' - please contact your upstream provider",
                status.name()
            )
            .into());
        }
        Ok(())
    }

    /// A presale by the id a request gave, with seed 004's checks of that id.
    pub(super) fn presale_by_id(&self, presale_id: i64) -> Result<&Presale, Rejection> {
        if presale_id < 1 {
            return Err("Missing account presale id".into());
        }
        if presale_id < SIX_DIGITS {
            return Err("Invalid account presale id".into());
        }
        self.presale(presale_id)
    }

    /// Seed 004's end-user checks of the presale an SQ is added to.
    fn presale_open_for_sq(&self, presale_id: i64) -> Result<&Presale, Rejection> {
        let presale = self.presale_by_id(presale_id)?;
        if presale.completed {
            return Err("Account presale is not valid for order".into());
        }
        if presale.package_plan_id.is_some() {
            return Err("Account presale already contain package plan".into());
        }
        Ok(presale)
    }

    /// PerformSimpleSQ, PerformGeneralPhoneSQ and PerformNWBSQ: the new SQ's id and result.
    /// An earlier SQ of the presale for the same service type is replaced, unless it is
    /// pending or already carries a package plan.
    pub(super) fn perform_sq(
        &mut self,
        presale_id: i64,
        service_type_id: i64,
        method: SqMethod,
    ) -> Result<(i64, SqResult), Rejection> {
        // The SP rules come first in the seed, but need the presale to find the account: a
        // presale that does not exist is refused by the end-user rules below.
        if let Some(presale) = self.presales.get(&presale_id) {
            self.check_may_order(presale.account_id)?;
        }
        let presale = self.presale_open_for_sq(presale_id)?;
        let check = self.catalog.orderable(service_type_id)?;
        if !method.accepts(check) {
            return Err(not_qualified(service_type_id, method.label()));
        }
        let result = match &method {
            SqMethod::Simple => SqResult::Qualified,
            SqMethod::GeneralPhone {
                transfer_type,
                identifier,
            } => {
                let churn = check_transfer_type(transfer_type)?;
                match identifier {
                    // pinned: the page says only that Churn requires it.
                    None if churn => return Err("Missing identifier".into()),
                    Some(number) if !is_phone_number(number) => {
                        return Err("Invalid phone number".into())
                    }
                    _ => SqResult::Qualified,
                }
            }
            SqMethod::Nwb {
                transfer_type,
                fnn,
                location_id,
            } => {
                check_transfer_type(transfer_type)?;
                match (fnn, location_id) {
                    (Some(fnn), None) if is_phone_number(fnn) => SqResult::Qualified,
                    (Some(_), None) => return Err("Invalid FNN".into()),
                    (None, Some(location_id)) => {
                        let address = self
                            .catalog
                            .address(location_id)
                            .ok_or("Invalid location id")?;
                        if address.serviceable {
                            SqResult::Qualified
                        } else {
                            SqResult::NotQualified
                        }
                    }
                    // pinned: the page shows the choice, not the error for neither or both.
                    _ => return Err("Invalid service identifier details".into()),
                }
            }
        };
        if let Some(old) = presale
            .sqs
            .iter()
            .find(|sq| sq.service_type_id == service_type_id)
        {
            if old.result == SqResult::Pending {
                return Err(format!(
                    "Service Qualification for service type id #{service_type_id} is currently in pending status"
                )
                .into());
            }
            if old.package_plan_id.is_some() {
                return Err(format!(
                    "Service Qualification id #{} is not valid for deletion",
                    old.sq_id
                )
                .into());
            }
        }

        let sq_id = next(&mut self.ids.sq);
        let presale = self.presale_mut(presale_id)?;
        presale
            .sqs
            .retain(|sq| sq.service_type_id != service_type_id);
        presale
            .sqs
            .push(Sq::new(sq_id, service_type_id, method, result));
        Ok((sq_id, result))
    }

    pub(super) fn find_nwb_addresses(
        &self,
        service_type_id: i64,
        query: &AddressQuery,
    ) -> Result<Vec<&Address>, Rejection> {
        let postcode = query.postcode.trim();
        if postcode.is_empty() {
            return Err("Missing postcode".into());
        }
        if !is_postcode(postcode) {
            return Err("Invalid postcode".into());
        }
        if query.suburb.trim().is_empty() {
            return Err("Missing suburb".into());
        }
        if query.state.trim().is_empty() {
            return Err("Missing state".into());
        }
        if self.catalog.orderable(service_type_id)? != CheckType::Nwb {
            return Err(not_qualified(service_type_id, "NWB"));
        }
        Ok(self
            .catalog
            .addresses()
            .filter(|a| query.matches(a))
            .collect())
    }

    /// The packages whose allowances include the service type of a successful SQ.
    pub(super) fn available_packages(
        &self,
        presale_id: i64,
    ) -> Result<Vec<&PackagePlan>, Rejection> {
        let presale = self.presale(presale_id)?;
        let types: Vec<i64> = presale.qualified().map(|sq| sq.service_type_id).collect();
        if types.is_empty() {
            return Err("Missing service qualification".into());
        }
        // pinned: the page lists the packages "available to order" on the presale; once
        // its package is selected ("only once per order") that one is all it can order.
        if let Some(selected) = presale.package_plan_id {
            return Ok(vec![self.catalog.package_plan(selected)?]);
        }
        Ok(self
            .catalog
            .package_plans()
            .filter(|p| p.offered_for(&types))
            .collect())
    }

    /// Selects the plan once per presale; the presale's SQs the plan covers carry it too.
    pub(super) fn select_package_plan(
        &mut self,
        presale_id: i64,
        package_plan_id: i64,
    ) -> Result<&PackagePlan, Rejection> {
        let presale = self.presale(presale_id)?;
        if presale.package_plan_id.is_some() {
            return Err("Account presale already contain package plan".into());
        }
        let plan = self.catalog.package_plan(package_plan_id)?;
        let types: Vec<i64> = presale.qualified().map(|sq| sq.service_type_id).collect();
        if !plan.offered_for(&types) {
            return Err("Package plan is not available for this order".into());
        }

        let covered: Vec<i64> = plan.allowances.iter().map(|a| a.service_type_id).collect();
        let presale = self.presale_mut(presale_id)?;
        presale.package_plan_id = Some(package_plan_id);
        for sq in presale.sqs.iter_mut() {
            if sq.result == SqResult::Qualified && covered.contains(&sq.service_type_id) {
                sq.package_plan_id = Some(package_plan_id);
            }
        }
        self.catalog.package_plan(package_plan_id)
    }

    /// Creates the package's services (Quantity of each allowance), Preactive. The checks
    /// follow W `API/Orders/CompleteOrder`: the SP account validation, then the presale's.
    pub(super) fn complete_order(
        &mut self,
        presale_id: i64,
    ) -> Result<Vec<CreatedService>, Rejection> {
        let presale = self.presale_by_id(presale_id)?;
        let account = self.accounts.get(&presale.account_id);
        if account.is_some() {
            self.check_may_order(presale.account_id)?;
        }
        if presale.completed {
            return Err("Account presale is not valid for order".into());
        }
        let account = account.ok_or("Missing customer account")?;
        if presale.qualified().next().is_none() {
            return Err("Missing service qualification".into());
        }
        let package_plan_id = presale.package_plan_id.ok_or("Missing package plan")?;
        let plan = self.catalog.package_plan(package_plan_id)?;
        let mut orders = Vec::new();
        for allowance in &plan.allowances {
            let sq = presale
                .qualified()
                .find(|sq| sq.service_type_id == allowance.service_type_id)
                .ok_or("Missing service qualification")?;
            let service_plan = self.catalog.service_plan(allowance.service_plan_id)?;
            if sq.configuration.is_empty() && !service_plan.properties.is_empty() {
                return Err("Missing service config".into());
            }
            if !service_plan.is_configured(sq) {
                return Err(format!(
                    "Account Presale SQ #{} missing mandatory service configuration",
                    sq.sq_id
                )
                .into());
            }
            orders.push((*allowance, sq.sq_id, sq.method.identifier()));
        }
        // pinned: the page's condition is cut ("… for order that re…"); here the account's
        // orders need one, and no operation of the simulator performs it.
        if account.needs_credit_check {
            return Err("Missing credit check".into());
        }

        let account_id = presale.account_id;
        self.presale_mut(presale_id)?.completed = true;
        let mut created = Vec::new();
        for (allowance, sq_id, identifier) in orders {
            for _ in 0..allowance.quantity {
                let service_id = next(&mut self.ids.service);
                let service = CreatedService {
                    service_id,
                    service_identifier: identifier
                        .clone()
                        .unwrap_or_else(|| made_up_identifier(service_id)),
                    account_id,
                    presale_id,
                    sq_id,
                    package_plan_id,
                    service_plan_id: allowance.service_plan_id,
                    service_type_id: allowance.service_type_id,
                    status: PRE_ACTIVE,
                };
                self.services.insert(service.service_id, service.clone());
                created.push(service);
            }
        }
        Ok(created)
    }
}

impl Emersion {
    /// serviceList: the account's services. pinned: an unknown account is listed empty,
    /// as the page documents only "Missing account_id".
    pub(super) fn service_list(&self, account_id: i64) -> Result<Vec<&CreatedService>, Rejection> {
        if account_id < 1 {
            return Err("Missing account_id".into());
        }
        Ok(self
            .services
            .values()
            .filter(|s| s.account_id == account_id)
            .collect())
    }

    /// serviceLookup: the services with this identifier, of a type when one is given.
    pub(super) fn service_lookup(
        &self,
        identifier: &str,
        service_type_id: Option<i64>,
    ) -> Result<Vec<&CreatedService>, Rejection> {
        if identifier.trim().is_empty() {
            return Err("Missing service_identifier".into());
        }
        Ok(self
            .services
            .values()
            .filter(|s| s.service_identifier == identifier)
            .filter(|s| service_type_id.is_none_or(|t| t == s.service_type_id))
            .collect())
    }
}
