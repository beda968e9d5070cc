//! AWS IAM: `aws:iam:Role` (with its trust policy, inline policies and managed policy
//! attachments) and `aws:iam:InstanceProfile`, on the shared skeleton (`managed.rs`).
//!
//! IAM is global: one client (its API is in `us-east-1` of the `aws` partition, like Route
//! 53's), and no `region` input. Ids are ARNs. Names are unique per account, and a second
//! `CreateRole` of one name fails (`EntityAlreadyExists`), so a create whose answer was lost is
//! recovered by reading the role of that name and adopting it only if its `cairn:urn` tag says
//! it was made for this resource.
//!
//! Policies are typed documents ([`PolicyDocument`], [`Statement`]), never strings: they are
//! validated before any call, sent as canonical JSON, and read back (AWS returns them
//! URL-encoded) into the same form, so `cairn refresh` shows a hand-edited policy as drift of
//! the statement that changed. A role's inline policies and managed policy attachments are
//! managed exclusively: one added by hand is drift, and the next deploy removes it.

use std::collections::BTreeMap;

use aws_sdk_iam::types::Tag;
use cairn::provider::{Context, ProviderError};
use cairn::{Input, Resource};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::client::{
    all_tags, build_error, found, gone_ok, invalid, parse_arn, parse_inputs, user_tags, validate_tags, AtUrn, Aws,
    AwsError, SdkResultExt, TAG_URN,
};
use crate::ec2::retry_while;
use crate::managed::{provider, same_set_or, Api, CreateError, Managed, Seen};

const IAM: &str = "IAM";
const NOT_FOUND: &[&str] = &["NoSuchEntity"];
const EXISTS: &[&str] = &["EntityAlreadyExists"];
/// How long a delete waits while IAM still sees the role in use (an instance profile it was
/// just removed from: IAM is eventually consistent).
const CONFLICT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Policy documents
// ---------------------------------------------------------------------------------------------

/// An IAM policy document: a list of statements (the policy language's version is always
/// `2012-10-17`).
///
/// ```
/// use cairn_aws::iam::{PolicyDocument, Principal, Statement};
/// // Who may assume a role: EC2 instances.
/// let trust = PolicyDocument::new([Statement::allow(["sts:AssumeRole"]).principal(Principal::Service, "ec2.amazonaws.com")]);
/// // What the role may do: pull from one repository.
/// let pull = PolicyDocument::new([
///     Statement::allow(["ecr:GetAuthorizationToken"]).on(["*"]),
///     Statement::allow(["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"])
///         .on(["arn:aws:ecr:eu-west-1:123456789012:repository/runner"]),
/// ]);
/// # let _ = (trust, pull);
/// ```
#[derive(Debug, Clone, Default, Serialize)]
pub struct PolicyDocument {
    pub statements: Vec<Statement>,
}

impl PolicyDocument {
    pub fn new(statements: impl IntoIterator<Item = Statement>) -> PolicyDocument {
        PolicyDocument { statements: statements.into_iter().collect() }
    }

    /// The trust policy that lets `service` (e.g. `ec2.amazonaws.com`) assume a role.
    pub fn assumable_by(service: &str) -> PolicyDocument {
        PolicyDocument::new([Statement::allow(["sts:AssumeRole"]).principal(Principal::Service, service)])
    }
}

/// One statement of a [`PolicyDocument`].
#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    /// An optional name (letters and digits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub effect: Effect,
    /// Who the statement is about: only in trust (and resource) policies.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub principals: BTreeMap<Principal, Vec<Input<String>>>,
    /// `service:Action` (wildcards allowed), or `*`.
    pub actions: Vec<String>,
    /// ARNs (wildcards allowed), or `*`: required in a role's own policies, absent from trust
    /// policies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Input<String>>,
    /// Condition operator (`StringEquals`, …) → condition key → values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub conditions: BTreeMap<String, BTreeMap<String, Vec<Input<String>>>>,
}

/// Whether a [`Statement`] allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    Allow,
    Deny,
}

/// The kind of a statement's principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Principal {
    /// An AWS account, user or role (ARN or account id), or `*`.
    #[serde(rename = "AWS")]
    Aws,
    /// An AWS service, e.g. `ec2.amazonaws.com`.
    Service,
    /// A web identity or SAML provider.
    Federated,
}

impl Statement {
    fn with(effect: Effect, actions: impl IntoIterator<Item = impl Into<String>>) -> Statement {
        Statement {
            sid: None,
            effect,
            principals: BTreeMap::new(),
            actions: actions.into_iter().map(Into::into).collect(),
            resources: Vec::new(),
            conditions: BTreeMap::new(),
        }
    }

    /// A statement that allows `actions`.
    pub fn allow(actions: impl IntoIterator<Item = impl Into<String>>) -> Statement {
        Statement::with(Effect::Allow, actions)
    }

    /// A statement that denies `actions`.
    pub fn deny(actions: impl IntoIterator<Item = impl Into<String>>) -> Statement {
        Statement::with(Effect::Deny, actions)
    }

    /// On these resources (ARNs, outputs of other resources, or `*`).
    pub fn on<R: Into<Input<String>>>(mut self, resources: impl IntoIterator<Item = R>) -> Statement {
        self.resources.extend(resources.into_iter().map(Into::into));
        self
    }

    /// About this principal.
    pub fn principal(mut self, kind: Principal, id: impl Into<Input<String>>) -> Statement {
        self.principals.entry(kind).or_default().push(id.into());
        self
    }

    /// Only when condition `operator` holds for `key` and one of `values`.
    pub fn when<V: Into<Input<String>>>(
        mut self,
        operator: &str,
        key: &str,
        values: impl IntoIterator<Item = V>,
    ) -> Statement {
        let entry = self.conditions.entry(operator.to_string()).or_default().entry(key.to_string()).or_default();
        entry.extend(values.into_iter().map(Into::into));
        self
    }

    /// Named `sid`.
    pub fn sid(mut self, sid: &str) -> Statement {
        self.sid = Some(sid.to_string());
        self
    }
}

/// A policy document as the provider sees it: resolved, the same shape as [`PolicyDocument`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Doc {
    statements: Vec<Stmt>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Stmt {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    effect: Effect,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    principals: BTreeMap<Principal, Vec<String>>,
    actions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    resources: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    conditions: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

/// What a document is for: who may assume a role, or what a role may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DocKind {
    Trust,
    Permissions,
}

impl Doc {
    /// Checks the document; `field` names it in errors (`assume_role_policy`,
    /// `inline_policies.pull`).
    fn validate(&self, t: &str, field: &str, kind: DocKind) -> Result<(), String> {
        if self.statements.is_empty() {
            return Err(format!("{t}: `{field}` has no statements"));
        }
        for (i, s) in self.statements.iter().enumerate() {
            let at = format!("{t}: `{field}.statements[{i}]`");
            if let Some(sid) = &s.sid {
                if sid.is_empty() || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(format!("{at}: `sid` `{sid}` may only hold letters and digits"));
                }
            }
            if s.actions.is_empty() {
                return Err(format!("{at}: `actions` is empty"));
            }
            for a in &s.actions {
                if !valid_action(a) {
                    return Err(format!("{at}: action `{a}` is not `service:Action` (or `*`)"));
                }
            }
            match kind {
                DocKind::Trust => {
                    if s.principals.values().all(Vec::is_empty) {
                        return Err(format!("{at}: a trust policy's statement needs a principal"));
                    }
                    if !s.resources.is_empty() {
                        return Err(format!("{at}: a trust policy's statement has no `resources`"));
                    }
                }
                DocKind::Permissions => {
                    if !s.principals.is_empty() {
                        return Err(format!("{at}: a role's own policy names no principal"));
                    }
                    if s.resources.is_empty() {
                        return Err(format!("{at}: `resources` is empty (use `*` for every resource)"));
                    }
                }
            }
            for r in s.resources.iter().chain(s.principals.values().flatten()) {
                if r.is_empty() {
                    return Err(format!("{at}: an empty resource or principal"));
                }
            }
            for (op, keys) in &s.conditions {
                if keys.is_empty() || keys.values().any(Vec::is_empty) {
                    return Err(format!("{at}: condition `{op}` needs a key and at least one value"));
                }
            }
        }
        Ok(())
    }

    /// The JSON text AWS takes: canonical (sorted keys, every list a list), so that the same
    /// document is always the same text.
    fn to_aws(&self) -> String {
        let statements: Vec<Value> = self
            .statements
            .iter()
            .map(|s| {
                let mut m = Map::new();
                if let Some(sid) = &s.sid {
                    m.insert("Sid".into(), json!(sid));
                }
                m.insert("Effect".into(), json!(s.effect));
                if !s.principals.is_empty() {
                    m.insert("Principal".into(), json!(s.principals));
                }
                m.insert("Action".into(), json!(s.actions));
                if !s.resources.is_empty() {
                    m.insert("Resource".into(), json!(s.resources));
                }
                if !s.conditions.is_empty() {
                    m.insert("Condition".into(), json!(s.conditions));
                }
                Value::Object(m)
            })
            .collect();
        json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    }

    /// A document as AWS returns it (URL-encoded JSON; one item may stand for a list of one),
    /// in this form. Parts the form does not model (`NotAction`, `NotResource`,
    /// `NotPrincipal`) are an error naming them.
    fn from_aws(text: &str) -> Result<Doc, String> {
        let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
        let v: Value =
            serde_json::from_str(&decoded).map_err(|e| format!("the policy AWS returned is not JSON: {e}"))?;
        let statements = match v.get("Statement") {
            Some(Value::Array(a)) => a.clone(),
            Some(one @ Value::Object(_)) => vec![one.clone()],
            _ => return Err("the policy AWS returned has no `Statement`".into()),
        };
        let list = |v: Option<&Value>| -> Vec<String> {
            match v {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                _ => Vec::new(),
            }
        };
        let mut out = Vec::new();
        for s in &statements {
            let Some(obj) = s.as_object() else {
                return Err("a statement of the policy AWS returned is not an object".into());
            };
            for k in obj.keys() {
                if !["Sid", "Effect", "Principal", "Action", "Resource", "Condition"].contains(&k.as_str()) {
                    return Err(format!("the policy uses `{k}`, which cairn's policy documents do not model"));
                }
            }
            let effect = match obj.get("Effect").and_then(Value::as_str) {
                Some("Allow") => Effect::Allow,
                Some("Deny") => Effect::Deny,
                other => return Err(format!("a statement's `Effect` is {other:?}")),
            };
            let principals = match obj.get("Principal") {
                None => BTreeMap::new(),
                Some(Value::String(star)) => BTreeMap::from([(Principal::Aws, vec![star.clone()])]),
                Some(Value::Object(p)) => {
                    let mut m = BTreeMap::new();
                    for (k, v) in p {
                        let kind: Principal = serde_json::from_value(json!(k))
                            .map_err(|_| format!("the policy names a principal of kind `{k}`"))?;
                        m.insert(kind, list(Some(v)));
                    }
                    m
                }
                Some(other) => return Err(format!("a statement's `Principal` is {other}")),
            };
            let mut conditions = BTreeMap::new();
            if let Some(Value::Object(c)) = obj.get("Condition") {
                for (op, keys) in c {
                    let keys = keys.as_object().cloned().unwrap_or_default();
                    conditions.insert(op.clone(), keys.iter().map(|(k, v)| (k.clone(), list(Some(v)))).collect());
                }
            }
            out.push(Stmt {
                sid: obj.get("Sid").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string),
                effect,
                principals,
                actions: list(obj.get("Action")),
                resources: list(obj.get("Resource")),
                conditions,
            });
        }
        Ok(Doc { statements: out })
    }

    /// The same document with every list sorted: equal for documents that mean the same.
    fn canonical(&self) -> Doc {
        let mut d = self.clone();
        for s in &mut d.statements {
            s.actions.sort();
            s.resources.sort();
            s.principals.values_mut().for_each(|v| v.sort());
            s.conditions.values_mut().flat_map(|k| k.values_mut()).for_each(|v| v.sort());
        }
        d
    }

    /// The document AWS holds, read back: `prior` (what state holds) when the two mean the
    /// same, so that a reordering is not drift.
    fn observed(text: &str, prior: Option<&Value>) -> Result<Value, String> {
        let seen = Doc::from_aws(text)?;
        if let Some(prior) = prior.and_then(|p| serde_json::from_value::<Doc>(p.clone()).ok()) {
            if prior.canonical() == seen.canonical() {
                return Ok(json!(prior));
            }
        }
        Ok(json!(seen))
    }
}

/// `*`, or `service:Action` with wildcards in the action.
fn valid_action(a: &str) -> bool {
    a == "*"
        || a.split_once(':').is_some_and(|(service, action)| {
            !service.is_empty()
                && service.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !action.is_empty()
                && action.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?')
        })
}

/// IAM names: 1 to `max` of letters, digits and `+=,.@_-`.
fn check_name(t: &str, field: &str, name: &str, max: usize) -> Result<(), String> {
    if name.is_empty() || name.len() > max {
        return Err(format!("{t}: `{field}` must be 1 to {max} characters, got `{name}`"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)) {
        return Err(format!("{t}: `{field}` `{name}` may only hold letters, digits and `+=,.@_-`"));
    }
    Ok(())
}

/// IAM paths: `/`, or `/a/b/`, at most 512 characters.
fn check_path(t: &str, path: &str) -> Result<(), String> {
    let ok = path.len() <= 512
        && path.starts_with('/')
        && path.ends_with('/')
        && path.bytes().all(|b| (0x21..=0x7e).contains(&b))
        && !path.contains("//");
    if !ok {
        return Err(format!("{t}: `path` must start and end with `/` (e.g. `/` or `/fleet/`), got `{path}`"));
    }
    Ok(())
}

/// The name at the end of an IAM ARN (`arn:aws:iam::123:role/path/name`).
fn name_of(ctx: Context<'_>, arn: &str, kind: &str) -> Result<String, ProviderError> {
    parse_arn(arn)
        .filter(|a| a.service == "iam" && a.resource.starts_with(&format!("{kind}/")))
        .and_then(|a| a.resource.rsplit('/').next().map(str::to_string))
        .ok_or_else(|| invalid(ctx, format!("`{arn}` is not an IAM {kind} ARN")))
}

fn tags_of(ctx: Context<'_>, user: &BTreeMap<String, String>) -> Result<Vec<Tag>, ProviderError> {
    all_tags(ctx, user)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<_, _>>()
        .map_err(|e| build_error(ctx, "tags", e))
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter().map(|t| (t.key().to_string(), t.value().to_string())).collect()
}

/// The user tag keys that `old` has and `new` has not.
fn removed(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    old.keys().filter(|k| !new.contains_key(*k)).cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// Role
// ---------------------------------------------------------------------------------------------

/// An IAM role: who may assume it (`assume_role_policy`) and what it may do (its inline
/// policies and the managed policies attached to it, both managed exclusively). Changing
/// `name` or `path` replaces it; everything else changes in place.
#[derive(Debug, Clone, Serialize)]
pub struct Role {
    /// Up to 64 letters, digits and `+=,.@_-`; unique in the account.
    pub name: Input<String>,
    /// `/` unless set, e.g. `/fleet/`.
    pub path: String,
    pub description: String,
    /// Who may assume the role (a trust policy).
    pub assume_role_policy: PolicyDocument,
    /// How long a session may last, in seconds: 3600 (the default) to 43200.
    pub max_session_duration: i32,
    /// ARNs of managed policies (AWS's or the account's) attached to the role.
    pub managed_policy_arns: Vec<Input<String>>,
    /// Policies embedded in the role, by name.
    pub inline_policies: BTreeMap<String, PolicyDocument>,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl Role {
    /// A role that `assume_role_policy` says who may assume, with no permissions yet.
    pub fn new(name: impl Into<Input<String>>, assume_role_policy: PolicyDocument) -> Role {
        Role {
            name: name.into(),
            path: "/".into(),
            description: String::new(),
            assume_role_policy,
            max_session_duration: 3600,
            managed_policy_arns: Vec::new(),
            inline_policies: BTreeMap::new(),
            tags: BTreeMap::new(),
        }
    }
}

cairn::outputs! {
    /// The outputs of a [`Role`].
    pub struct RoleOutputs {
        pub arn: String,
        pub name: String,
        /// The role's stable unique id (`AROA…`), as policies' `aws:userid` conditions see it.
        pub unique_id: String,
    }
}

impl Resource for Role {
    const TYPE: &'static str = "aws:iam:Role";
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["name", "path"];
    type Outputs = RoleOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleArgs {
    name: String,
    #[serde(default = "root")]
    path: String,
    #[serde(default)]
    description: String,
    assume_role_policy: Doc,
    #[serde(default = "hour")]
    max_session_duration: i32,
    #[serde(default)]
    managed_policy_arns: Vec<String>,
    #[serde(default)]
    inline_policies: BTreeMap<String, Doc>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

fn root() -> String {
    "/".into()
}

fn hour() -> i32 {
    3600
}

impl RoleArgs {
    fn parse(inputs: &Value) -> Result<RoleArgs, String> {
        let t = Role::TYPE;
        let args: RoleArgs = parse_inputs(t, inputs)?;
        check_name(t, "name", &args.name, 64)?;
        check_path(t, &args.path)?;
        if args.description.chars().count() > 1000 {
            return Err(format!("{t}: `description` must be at most 1000 characters"));
        }
        if !(3600..=43200).contains(&args.max_session_duration) {
            return Err(format!(
                "{t}: `max_session_duration` must be 3600 to 43200 seconds, got {}",
                args.max_session_duration
            ));
        }
        args.assume_role_policy.validate(t, "assume_role_policy", DocKind::Trust)?;
        for (name, doc) in &args.inline_policies {
            check_name(t, "inline_policies", name, 128)?;
            doc.validate(t, &format!("inline_policies.{name}"), DocKind::Permissions)?;
        }
        for arn in &args.managed_policy_arns {
            if !parse_arn(arn).is_some_and(|a| a.service == "iam" && a.resource.starts_with("policy/")) {
                return Err(format!("{t}: `managed_policy_arns`: `{arn}` is not an IAM policy ARN"));
            }
        }
        let mut arns = args.managed_policy_arns.clone();
        arns.sort();
        if arns.windows(2).any(|w| w[0] == w[1]) {
            return Err(format!("{t}: `managed_policy_arns` names a policy twice"));
        }
        validate_tags(t, &args.tags)?;
        Ok(args)
    }
}

provider! {
    /// The provider of [`Role`].
    RoleProvider(RoleApi)
}

impl RoleProvider {
    pub fn new(aws: &Aws) -> RoleProvider {
        RoleProvider(Managed(RoleApi { aws: aws.clone(), wait: CONFLICT_WAIT }))
    }

    /// The same provider, waiting at most `wait` (instead of 30 s) for IAM to see that no
    /// instance profile holds a role being deleted.
    pub fn with_wait(mut self, wait: std::time::Duration) -> RoleProvider {
        self.0 .0.wait = wait;
        self
    }
}

/// The IAM calls behind [`RoleProvider`].
#[derive(Debug, Clone)]
struct RoleApi {
    aws: Aws,
    wait: std::time::Duration,
}

impl RoleApi {
    async fn inline_names(&self, name: &str) -> Result<Vec<String>, AwsError> {
        let iam = self.aws.iam().await;
        let (mut names, mut marker) = (Vec::new(), None);
        loop {
            let page =
                iam.list_role_policies().role_name(name).set_marker(marker).send().await.op(IAM, "ListRolePolicies")?;
            names.extend(page.policy_names().iter().cloned());
            match page.marker().filter(|_| page.is_truncated()) {
                Some(m) => marker = Some(m.to_string()),
                None => return Ok(names),
            }
        }
    }

    async fn attached(&self, name: &str) -> Result<Vec<String>, AwsError> {
        let iam = self.aws.iam().await;
        let (mut arns, mut marker) = (Vec::new(), None);
        loop {
            let page = iam
                .list_attached_role_policies()
                .role_name(name)
                .set_marker(marker)
                .send()
                .await
                .op(IAM, "ListAttachedRolePolicies")?;
            arns.extend(page.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_string)));
            match page.marker().filter(|_| page.is_truncated()) {
                Some(m) => marker = Some(m.to_string()),
                None => return Ok(arns),
            }
        }
    }

    /// Puts each inline policy of `new` that differs from `old`'s, deletes those `new` lacks.
    async fn sync_inline(
        &self,
        ctx: Context<'_>,
        name: &str,
        old: &BTreeMap<String, Doc>,
        new: &BTreeMap<String, Doc>,
    ) -> Result<(), ProviderError> {
        let iam = self.aws.iam().await;
        for (policy, doc) in new {
            if old.get(policy).map(Doc::canonical) != Some(doc.canonical()) {
                iam.put_role_policy()
                    .role_name(name)
                    .policy_name(policy)
                    .policy_document(doc.to_aws())
                    .send()
                    .await
                    .op(IAM, "PutRolePolicy")
                    .at(ctx)?;
            }
        }
        self.delete_inline(ctx, name, old.keys().filter(|p| !new.contains_key(*p))).await
    }

    /// Deletes these inline policies of the role; one already gone is what was wanted.
    async fn delete_inline(
        &self,
        ctx: Context<'_>,
        name: &str,
        policies: impl Iterator<Item = &String>,
    ) -> Result<(), ProviderError> {
        let iam = self.aws.iam().await;
        for policy in policies {
            let deleted =
                iam.delete_role_policy().role_name(name).policy_name(policy).send().await.op(IAM, "DeleteRolePolicy");
            gone_ok(deleted, NOT_FOUND).at(ctx)?;
        }
        Ok(())
    }

    /// Attaches the managed policies `new` has and `old` has not, detaches the others.
    async fn sync_attached(
        &self,
        ctx: Context<'_>,
        name: &str,
        old: &[String],
        new: &[String],
    ) -> Result<(), ProviderError> {
        let iam = self.aws.iam().await;
        for arn in new.iter().filter(|a| !old.contains(a)) {
            iam.attach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .op(IAM, "AttachRolePolicy")
                .at(ctx)?;
        }
        for arn in old.iter().filter(|a| !new.contains(a)) {
            let detached =
                iam.detach_role_policy().role_name(name).policy_arn(arn).send().await.op(IAM, "DetachRolePolicy");
            gone_ok(detached, NOT_FOUND).at(ctx)?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Api for RoleApi {
    type Resource = Role;
    type Args = RoleArgs;
    const EXISTS: &'static [&'static str] = EXISTS;

    fn parse(inputs: &Value) -> Result<RoleArgs, String> {
        RoleArgs::parse(inputs)
    }

    fn identity(inputs: &Value) -> Value {
        json!({"name": inputs.get("name")})
    }

    async fn create(&self, ctx: Context<'_>, args: &RoleArgs) -> Result<String, CreateError> {
        let iam = self.aws.iam().await;
        let mut call = iam
            .create_role()
            .role_name(&args.name)
            .path(&args.path)
            .assume_role_policy_document(args.assume_role_policy.to_aws())
            .max_session_duration(args.max_session_duration)
            .set_tags(Some(tags_of(ctx, &args.tags)?));
        if !args.description.is_empty() {
            call = call.description(&args.description);
        }
        let out = call.send().await.op(IAM, "CreateRole")?;
        let arn =
            out.role().map(|r| r.arn().to_string()).ok_or_else(|| invalid(ctx, "IAM CreateRole returned no role"))?;
        // If one of these fails, the role exists without them: the create stays pending, and the
        // next run finds the role (by its name and tag) and adds what is missing.
        self.sync_inline(ctx, &args.name, &BTreeMap::new(), &args.inline_policies).await?;
        self.sync_attached(ctx, &args.name, &[], &args.managed_policy_arns).await?;
        Ok(arn)
    }

    async fn observe(&self, ctx: Context<'_>, id: &str, prior: &Value) -> Result<Option<Seen>, ProviderError> {
        let name = name_of(ctx, id, "role")?;
        let iam = self.aws.iam().await;
        let got = found(iam.get_role().role_name(&name).send().await.op(IAM, "GetRole"), NOT_FOUND).at(ctx)?;
        let Some(role) = got.as_ref().and_then(|g| g.role()) else {
            return Ok(None);
        };
        if role.arn() != id {
            // Another role of the same name (with another path) replaced the one recorded.
            return Ok(None);
        }
        let read = |text: &str, prior: Option<&Value>| Doc::observed(text, prior).map_err(|e| invalid(ctx, e));
        let trust = read(role.assume_role_policy_document().unwrap_or_default(), prior.get("assume_role_policy"))?;
        let mut inline = Map::new();
        for policy in found(self.inline_names(&name).await, NOT_FOUND).at(ctx)?.unwrap_or_default() {
            let got = iam.get_role_policy().role_name(&name).policy_name(&policy).send().await.op(IAM, "GetRolePolicy");
            if let Some(got) = found(got, NOT_FOUND).at(ctx)? {
                let doc = read(got.policy_document(), prior.get("inline_policies").and_then(|p| p.get(&policy)))?;
                inline.insert(policy, doc);
            }
        }
        let attached = found(self.attached(&name).await, NOT_FOUND).at(ctx)?.unwrap_or_default();
        let tags = tag_map(role.tags());
        let inputs = json!({
            "name": name,
            "path": role.path(),
            "description": role.description().unwrap_or_default(),
            "assume_role_policy": trust,
            "max_session_duration": role.max_session_duration().unwrap_or(3600),
            "managed_policy_arns": same_set_or(attached, prior, "managed_policy_arns"),
            "inline_policies": inline,
            "tags": user_tags(tags.clone()),
        });
        let outputs = json!({"arn": role.arn(), "name": name, "unique_id": role.role_id()});
        Ok(Some(Seen::new(id, inputs, outputs, tags.get(TAG_URN).cloned())))
    }

    async fn update(&self, ctx: Context<'_>, _id: &str, old: &RoleArgs, new: &RoleArgs) -> Result<(), ProviderError> {
        let iam = self.aws.iam().await;
        let name = &new.name;
        if old.assume_role_policy.canonical() != new.assume_role_policy.canonical() {
            iam.update_assume_role_policy()
                .role_name(name)
                .policy_document(new.assume_role_policy.to_aws())
                .send()
                .await
                .op(IAM, "UpdateAssumeRolePolicy")
                .at(ctx)?;
        }
        if old.description != new.description || old.max_session_duration != new.max_session_duration {
            iam.update_role()
                .role_name(name)
                .description(&new.description)
                .max_session_duration(new.max_session_duration)
                .send()
                .await
                .op(IAM, "UpdateRole")
                .at(ctx)?;
        }
        self.sync_inline(ctx, name, &old.inline_policies, &new.inline_policies).await?;
        self.sync_attached(ctx, name, &old.managed_policy_arns, &new.managed_policy_arns).await?;
        let gone = removed(&old.tags, &new.tags);
        if !gone.is_empty() {
            iam.untag_role().role_name(name).set_tag_keys(Some(gone)).send().await.op(IAM, "UntagRole").at(ctx)?;
        }
        // Always: this also moves the `cairn:urn` tag along with a renamed (aliased) resource.
        iam.tag_role()
            .role_name(name)
            .set_tags(Some(tags_of(ctx, &new.tags)?))
            .send()
            .await
            .op(IAM, "TagRole")
            .at(ctx)?;
        Ok(())
    }

    /// Detaches its managed policies and deletes its inline ones first (IAM refuses to delete
    /// a role that has any).
    async fn delete(&self, ctx: Context<'_>, id: &str, _prior: &Value) -> Result<(), ProviderError> {
        let name = name_of(ctx, id, "role")?;
        let Some(inline) = found(self.inline_names(&name).await, NOT_FOUND).at(ctx)? else {
            return Ok(());
        };
        let attached = found(self.attached(&name).await, NOT_FOUND).at(ctx)?.unwrap_or_default();
        self.delete_inline(ctx, &name, inline.iter()).await?;
        self.sync_attached(ctx, &name, &attached, &[]).await?;
        let iam = self.aws.iam().await;
        let deleted = retry_while(&["DeleteConflict"], self.wait, || async {
            gone_ok(iam.delete_role().role_name(&name).send().await.op(IAM, "DeleteRole"), NOT_FOUND)
        })
        .await;
        deleted.map_err(|e| {
            if e.is(&["DeleteConflict"]) {
                let waited = self.wait.as_secs();
                invalid(ctx, format!("{id} is still in use after {waited}s (an instance profile holds it): {e}"))
            } else {
                e.at(ctx)
            }
        })
    }

    async fn candidates(&self, ctx: Context<'_>, identity: &Value) -> Result<Vec<String>, ProviderError> {
        let Some(name) = identity.get("name").and_then(Value::as_str) else {
            return Ok(Vec::new());
        };
        let got = self.aws.iam().await.get_role().role_name(name).send().await.op(IAM, "GetRole");
        Ok(found(got, NOT_FOUND).at(ctx)?.and_then(|g| g.role().map(|r| r.arn().to_string())).into_iter().collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Instance profile
// ---------------------------------------------------------------------------------------------

/// An instance profile: how EC2 instances (launch templates' `iam_instance_profile`) take on
/// a role. Changing `name` or `path` replaces it; its role changes in place.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceProfile {
    /// Up to 128 letters, digits and `+=,.@_-`; unique in the account.
    pub name: Input<String>,
    /// `/` unless set.
    pub path: String,
    /// The name of the role instances take on (a [`Role`]'s `name` output); `None`: none.
    pub role: Option<Input<String>>,
    /// Tags besides the `cairn:stack` and `cairn:urn` tags cairn adds.
    pub tags: BTreeMap<String, Input<String>>,
}

impl InstanceProfile {
    /// A profile for instances that take on `role` (a role's name).
    pub fn new(name: impl Into<Input<String>>, role: impl Into<Input<String>>) -> InstanceProfile {
        InstanceProfile { name: name.into(), path: "/".into(), role: Some(role.into()), tags: BTreeMap::new() }
    }
}

cairn::outputs! {
    /// The outputs of an [`InstanceProfile`].
    pub struct InstanceProfileOutputs {
        pub arn: String,
        pub name: String,
        pub unique_id: String,
    }
}

impl Resource for InstanceProfile {
    const TYPE: &'static str = "aws:iam:InstanceProfile";
    const REPLACE_ON_CHANGE: &'static [&'static str] = &["name", "path"];
    type Outputs = InstanceProfileOutputs;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProfileArgs {
    name: String,
    #[serde(default = "root")]
    path: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl ProfileArgs {
    fn parse(inputs: &Value) -> Result<ProfileArgs, String> {
        let t = InstanceProfile::TYPE;
        let args: ProfileArgs = parse_inputs(t, inputs)?;
        check_name(t, "name", &args.name, 128)?;
        check_path(t, &args.path)?;
        if let Some(role) = &args.role {
            check_name(t, "role", role, 64)?;
        }
        validate_tags(t, &args.tags)?;
        Ok(args)
    }
}

provider! {
    /// The provider of [`InstanceProfile`].
    InstanceProfileProvider(InstanceProfileApi)
}

impl InstanceProfileProvider {
    pub fn new(aws: &Aws) -> InstanceProfileProvider {
        InstanceProfileProvider(Managed(InstanceProfileApi { aws: aws.clone() }))
    }
}

/// The IAM calls behind [`InstanceProfileProvider`].
#[derive(Debug, Clone)]
struct InstanceProfileApi {
    aws: Aws,
}

impl InstanceProfileApi {
    /// Moves the profile from role `old` to role `new` (a profile holds at most one).
    async fn set_role(
        &self,
        ctx: Context<'_>,
        name: &str,
        old: Option<&str>,
        new: Option<&str>,
    ) -> Result<(), ProviderError> {
        if old == new {
            return Ok(());
        }
        let iam = self.aws.iam().await;
        if let Some(old) = old {
            let removed = iam
                .remove_role_from_instance_profile()
                .instance_profile_name(name)
                .role_name(old)
                .send()
                .await
                .op(IAM, "RemoveRoleFromInstanceProfile");
            gone_ok(removed, NOT_FOUND).at(ctx)?;
        }
        if let Some(new) = new {
            iam.add_role_to_instance_profile()
                .instance_profile_name(name)
                .role_name(new)
                .send()
                .await
                .op(IAM, "AddRoleToInstanceProfile")
                .at(ctx)?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Api for InstanceProfileApi {
    type Resource = InstanceProfile;
    type Args = ProfileArgs;
    const EXISTS: &'static [&'static str] = EXISTS;

    fn parse(inputs: &Value) -> Result<ProfileArgs, String> {
        ProfileArgs::parse(inputs)
    }

    fn identity(inputs: &Value) -> Value {
        json!({"name": inputs.get("name")})
    }

    async fn create(&self, ctx: Context<'_>, args: &ProfileArgs) -> Result<String, CreateError> {
        let iam = self.aws.iam().await;
        let out = iam
            .create_instance_profile()
            .instance_profile_name(&args.name)
            .path(&args.path)
            .set_tags(Some(tags_of(ctx, &args.tags)?))
            .send()
            .await
            .op(IAM, "CreateInstanceProfile")?;
        let arn = out
            .instance_profile()
            .map(|p| p.arn().to_string())
            .ok_or_else(|| invalid(ctx, "IAM CreateInstanceProfile returned no instance profile"))?;
        self.set_role(ctx, &args.name, None, args.role.as_deref()).await?;
        Ok(arn)
    }

    async fn observe(&self, ctx: Context<'_>, id: &str, _prior: &Value) -> Result<Option<Seen>, ProviderError> {
        let name = name_of(ctx, id, "instance-profile")?;
        let iam = self.aws.iam().await;
        let got = iam.get_instance_profile().instance_profile_name(&name).send().await.op(IAM, "GetInstanceProfile");
        let got = found(got, NOT_FOUND).at(ctx)?;
        let Some(profile) = got.as_ref().and_then(|g| g.instance_profile()).filter(|p| p.arn() == id) else {
            return Ok(None);
        };
        let tags = tag_map(profile.tags());
        let inputs = json!({
            "name": name,
            "path": profile.path(),
            "role": profile.roles().first().map(|r| r.role_name()),
            "tags": user_tags(tags.clone()),
        });
        let outputs = json!({"arn": id, "name": name, "unique_id": profile.instance_profile_id()});
        Ok(Some(Seen::new(id, inputs, outputs, tags.get(TAG_URN).cloned())))
    }

    async fn update(
        &self,
        ctx: Context<'_>,
        _id: &str,
        old: &ProfileArgs,
        new: &ProfileArgs,
    ) -> Result<(), ProviderError> {
        self.set_role(ctx, &new.name, old.role.as_deref(), new.role.as_deref()).await?;
        let iam = self.aws.iam().await;
        let gone = removed(&old.tags, &new.tags);
        if !gone.is_empty() {
            iam.untag_instance_profile()
                .instance_profile_name(&new.name)
                .set_tag_keys(Some(gone))
                .send()
                .await
                .op(IAM, "UntagInstanceProfile")
                .at(ctx)?;
        }
        iam.tag_instance_profile()
            .instance_profile_name(&new.name)
            .set_tags(Some(tags_of(ctx, &new.tags)?))
            .send()
            .await
            .op(IAM, "TagInstanceProfile")
            .at(ctx)?;
        Ok(())
    }

    /// Removes its role first (IAM refuses to delete a profile that holds one).
    async fn delete(&self, ctx: Context<'_>, id: &str, _prior: &Value) -> Result<(), ProviderError> {
        let name = name_of(ctx, id, "instance-profile")?;
        let iam = self.aws.iam().await;
        let got = iam.get_instance_profile().instance_profile_name(&name).send().await.op(IAM, "GetInstanceProfile");
        let Some(got) = found(got, NOT_FOUND).at(ctx)? else {
            return Ok(());
        };
        for role in got.instance_profile().map(|p| p.roles()).unwrap_or_default() {
            self.set_role(ctx, &name, Some(role.role_name()), None).await?;
        }
        let deleted =
            iam.delete_instance_profile().instance_profile_name(&name).send().await.op(IAM, "DeleteInstanceProfile");
        gone_ok(deleted, NOT_FOUND).at(ctx)
    }

    async fn candidates(&self, ctx: Context<'_>, identity: &Value) -> Result<Vec<String>, ProviderError> {
        let Some(name) = identity.get("name").and_then(Value::as_str) else {
            return Ok(Vec::new());
        };
        let got = self
            .aws
            .iam()
            .await
            .get_instance_profile()
            .instance_profile_name(name)
            .send()
            .await
            .op(IAM, "GetInstanceProfile");
        let got = found(got, NOT_FOUND).at(ctx)?;
        Ok(got.and_then(|g| g.instance_profile().map(|p| p.arn().to_string())).into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(v: Value) -> Doc {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_document_goes_to_aws_and_back_unchanged() {
        let trust = PolicyDocument::assumable_by("ec2.amazonaws.com");
        let d = doc(json!(trust));
        assert_eq!(
            d.to_aws(),
            r#"{"Statement":[{"Action":["sts:AssumeRole"],"Effect":"Allow","Principal":{"Service":["ec2.amazonaws.com"]}}],"Version":"2012-10-17"}"#
        );
        assert_eq!(Doc::from_aws(&d.to_aws()).unwrap(), d);
        // AWS returns documents URL-encoded, with single items as strings.
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C\
                       %22Principal%22%3A%7B%22Service%22%3A%22ec2.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%7D";
        assert_eq!(Doc::from_aws(encoded).unwrap(), d);
        let star = Doc::from_aws(r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"*"}]}"#).unwrap();
        assert_eq!(star.statements[0].principals[&Principal::Aws], ["*"]);
        let e = Doc::from_aws(r#"{"Statement":[{"Effect":"Allow","NotAction":"s3:*","Resource":"*"}]}"#).unwrap_err();
        assert!(e.contains("`NotAction`"), "{e}");
    }

    #[test]
    fn a_reordered_document_reads_as_the_prior_one() {
        let prior = json!(PolicyDocument::new([Statement::allow(["b:B", "a:A"]).on(["*"])]));
        let reordered = r#"{"Statement":[{"Effect":"Allow","Action":["a:A","b:B"],"Resource":"*"}]}"#;
        assert_eq!(Doc::observed(reordered, Some(&prior)).unwrap(), prior);
        let changed = r#"{"Statement":[{"Effect":"Allow","Action":["a:A","c:C"],"Resource":"*"}]}"#;
        assert_ne!(Doc::observed(changed, Some(&prior)).unwrap(), prior);
    }

    #[test]
    fn role_validation_names_the_field() {
        let trust = json!(PolicyDocument::assumable_by("ec2.amazonaws.com"));
        let role = |extra: Value| {
            let mut v = json!({"name": "fleet", "assume_role_policy": trust});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            RoleArgs::parse(&v)
        };
        assert!(role(json!({})).is_ok());
        let err = |extra: Value| role(extra).unwrap_err();
        assert!(err(json!({"name": "a b"})).contains("`name`"));
        assert!(err(json!({"path": "fleet"})).contains("`path`"));
        assert!(err(json!({"max_session_duration": 60})).contains("`max_session_duration`"));
        assert!(err(json!({"managed_policy_arns": ["AmazonS3ReadOnly"]})).contains("`managed_policy_arns`"));
        let no_resource = json!({"statements": [{"effect": "Allow", "actions": ["logs:PutLogEvents"]}]});
        let e = err(json!({"inline_policies": {"logs": no_resource}}));
        assert!(e.contains("`inline_policies.logs.statements[0]`") && e.contains("`resources`"), "{e}");
        let bad_action = json!({"statements": [{"effect": "Allow", "actions": ["PutLogEvents"], "resources": ["*"]}]});
        assert!(err(json!({"inline_policies": {"logs": bad_action}})).contains("`PutLogEvents`"));
        let no_principal = json!({"statements": [{"effect": "Allow", "actions": ["sts:AssumeRole"]}]});
        assert!(err(json!({"assume_role_policy": no_principal})).contains("needs a principal"));
    }
}
