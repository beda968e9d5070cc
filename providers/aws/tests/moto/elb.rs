use cairn::provider::Provider;
use cairn::Resource;
use cairn_aws::elb::{
    Action, Condition, HealthCheck, Listener, ListenerProvider, ListenerRule, ListenerRuleProvider, LoadBalancer,
    LoadBalancerProvider, TargetGroup, TargetGroupProvider,
};
use cairn_aws::Aws;
use serde_json::Value;

use crate::common::{ctx, urn, Fault, Faults, FaultyProxy, Moto};

const REGION: &str = "eu-west-1";

fn inputs<T: serde::Serialize>(r: &T) -> Value {
    serde_json::to_value(r).unwrap()
}

/// A VPC with three subnets in distinct zones and a security group, made out of band.
async fn network(moto: &Moto) -> (String, Vec<String>, String) {
    let ec2 = moto.ec2(REGION);
    let vpc = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let mut subnets = Vec::new();
    for (i, zone) in ["a", "b", "c"].iter().enumerate() {
        let s = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("10.0.{i}.0/24"))
            .availability_zone(format!("{REGION}{zone}"))
            .send()
            .await
            .unwrap();
        subnets.push(s.subnet().unwrap().subnet_id().unwrap().to_string());
    }
    let sg = ec2.create_security_group().group_name("lb").description("lb").vpc_id(&vpc).send().await.unwrap();
    (vpc, subnets, sg.group_id().unwrap().to_string())
}

async fn load_balancer_count(moto: &Moto) -> usize {
    moto.elb(REGION).describe_load_balancers().send().await.unwrap().load_balancers().len()
}

#[tokio::test]
async fn load_balancer_target_group_listeners_and_rules() {
    let moto = Moto::start();
    let aws = moto.aws();
    let (vpc, subnets, sg) = network(&moto).await;
    let lbs = LoadBalancerProvider::new(&aws);
    let lb_urn = urn(LoadBalancer::TYPE, "web");
    let mut lb = LoadBalancer::application("web", subnets[..2].to_vec()).in_region(REGION);
    lb.security_group_ids.push(sg.clone().into());
    lb.tags.insert("team".into(), "platform".into());
    let created = lbs.create(ctx(&lb_urn), &inputs(&lb)).await.unwrap();
    let lb_arn = created.id.clone();
    assert!(
        lb_arn.starts_with("arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/"),
        "{lb_arn}"
    );
    let out = &created.outputs;
    assert_eq!(out["arn_suffix"], lb_arn.split_once(":loadbalancer/").unwrap().1);
    assert_eq!(out["vpc_id"], vpc);
    assert!(out["dns_name"].as_str().is_some_and(|d| d.contains("web")), "{out}");
    assert!(out["zone_id"].as_str().is_some_and(|z| !z.is_empty()), "{out}");
    assert_eq!(lbs.read(ctx(&lb_urn), &lb_arn, &inputs(&lb)).await.unwrap().unwrap().inputs, inputs(&lb));

    // Subnets (a third zone) and tags change in place, keeping every output.
    let mut wider = lb.clone();
    wider.subnet_ids = subnets.iter().map(|s| s.clone().into()).collect();
    wider.tags.clear();
    assert_eq!(lbs.update(ctx(&lb_urn), &lb_arn, &inputs(&lb), &inputs(&wider)).await.unwrap(), created.outputs);
    assert_eq!(lbs.read(ctx(&lb_urn), &lb_arn, &inputs(&wider)).await.unwrap().unwrap().inputs, inputs(&wider));

    // A target group with its health check and deregistration delay.
    let tgs = TargetGroupProvider::new(&aws);
    let tg_urn = urn(TargetGroup::TYPE, "runner");
    let mut tg = TargetGroup::http("runner", vpc.clone(), 8080, "/_health").in_region(REGION);
    tg.deregistration_delay_seconds = 30;
    let tg_created = tgs.create(ctx(&tg_urn), &inputs(&tg)).await.unwrap();
    let tg_arn = tg_created.id.clone();
    assert_eq!(tg_created.outputs["arn_suffix"], tg_arn.rsplit_once(':').unwrap().1);
    assert_eq!(tgs.read(ctx(&tg_urn), &tg_arn, &inputs(&tg)).await.unwrap().unwrap().inputs, inputs(&tg));
    let mut checked = tg.clone();
    checked.health_check =
        HealthCheck { interval_seconds: 10, matcher: Some("200-299".into()), ..HealthCheck::http("/ready") };
    checked.deregistration_delay_seconds = 10;
    assert_eq!(tgs.update(ctx(&tg_urn), &tg_arn, &inputs(&tg), &inputs(&checked)).await.unwrap(), tg_created.outputs);
    assert_eq!(tgs.read(ctx(&tg_urn), &tg_arn, &inputs(&checked)).await.unwrap().unwrap().inputs, inputs(&checked));

    // Listeners: HTTP redirecting to HTTPS, HTTP on 8080 forwarding; a rule on the latter.
    let listeners = ListenerProvider::new(&aws);
    let http_urn = urn(Listener::TYPE, "http");
    let http = Listener::http(lb_arn.clone(), 80, Action::redirect_to_https()).in_region(REGION);
    let http_created = listeners.create(ctx(&http_urn), &inputs(&http)).await.unwrap();
    assert_eq!(
        listeners.read(ctx(&http_urn), &http_created.id, &inputs(&http)).await.unwrap().unwrap().inputs,
        inputs(&http)
    );
    let app_urn = urn(Listener::TYPE, "app");
    let app = Listener::http(lb_arn.clone(), 8080, Action::forward(tg_arn.clone())).in_region(REGION);
    let app_created = listeners.create(ctx(&app_urn), &inputs(&app)).await.unwrap();
    assert_eq!(
        listeners.read(ctx(&app_urn), &app_created.id, &inputs(&app)).await.unwrap().unwrap().inputs,
        inputs(&app)
    );
    // The default action changes in place.
    let mut fixed = app.clone();
    fixed.default_action =
        Action::FixedResponse { status_code: 503, content_type: "text/plain".into(), body: "maintenance".into() };
    listeners.update(ctx(&app_urn), &app_created.id, &inputs(&app), &inputs(&fixed)).await.unwrap();
    assert_eq!(
        listeners.read(ctx(&app_urn), &app_created.id, &inputs(&fixed)).await.unwrap().unwrap().inputs,
        inputs(&fixed)
    );

    let rules = ListenerRuleProvider::new(&aws);
    let rule_urn = urn(ListenerRule::TYPE, "api");
    let rule = ListenerRule::new(
        app_created.id.clone(),
        10,
        vec![Condition::PathPattern(vec!["/v1.1/*".into()])],
        Action::forward(tg_arn.clone()),
    )
    .in_region(REGION);
    let rule_created = rules.create(ctx(&rule_urn), &inputs(&rule)).await.unwrap();
    assert_eq!(
        rules.read(ctx(&rule_urn), &rule_created.id, &inputs(&rule)).await.unwrap().unwrap().inputs,
        inputs(&rule)
    );
    let mut moved = rule.clone();
    moved.priority = 20;
    moved.conditions = vec![Condition::HostHeader(vec!["api.example.com".into()])];
    rules.update(ctx(&rule_urn), &rule_created.id, &inputs(&rule), &inputs(&moved)).await.unwrap();
    assert_eq!(
        rules.read(ctx(&rule_urn), &rule_created.id, &inputs(&moved)).await.unwrap().unwrap().inputs,
        inputs(&moved)
    );

    // Found again by their identities and tags; not for another URN.
    for (p, u, r, id) in [
        (&lbs as &dyn Provider, &lb_urn, inputs(&wider), &lb_arn),
        (&tgs, &tg_urn, inputs(&checked), &tg_arn),
        (&listeners, &app_urn, inputs(&fixed), &app_created.id),
        (&rules, &rule_urn, inputs(&moved), &rule_created.id),
    ] {
        let found = p.find(ctx(u), &p.identity(&r)).await.unwrap().expect("found by identity and tag");
        assert_eq!(&found.id, id);
        assert_eq!(p.find(ctx(&http_urn), &p.identity(&r)).await.unwrap(), None, "not made for {http_urn}");
    }

    // Deleted leaves first; every delete of what is gone succeeds.
    rules.delete(ctx(&rule_urn), &rule_created.id, &inputs(&moved)).await.unwrap();
    for (u, id, r) in [(&http_urn, &http_created.id, &http), (&app_urn, &app_created.id, &fixed)] {
        listeners.delete(ctx(u), id, &inputs(r)).await.unwrap();
        assert_eq!(listeners.read(ctx(u), id, &inputs(r)).await.unwrap(), None);
    }
    tgs.delete(ctx(&tg_urn), &tg_arn, &inputs(&checked)).await.unwrap();
    assert_eq!(tgs.read(ctx(&tg_urn), &tg_arn, &inputs(&checked)).await.unwrap(), None);
    lbs.delete(ctx(&lb_urn), &lb_arn, &inputs(&wider)).await.unwrap();
    assert_eq!(lbs.read(ctx(&lb_urn), &lb_arn, &inputs(&wider)).await.unwrap(), None);
    assert_eq!(load_balancer_count(&moto).await, 0);
    rules.delete(ctx(&rule_urn), &rule_created.id, &inputs(&moved)).await.unwrap();
    tgs.delete(ctx(&tg_urn), &tg_arn, &inputs(&checked)).await.unwrap();
    lbs.delete(ctx(&lb_urn), &lb_arn, &inputs(&wider)).await.unwrap();
}

#[tokio::test]
async fn a_name_taken_by_another_resource_is_refused() {
    let moto = Moto::start();
    let aws = moto.aws();
    let (vpc, subnets, _) = network(&moto).await;
    let lbs = LoadBalancerProvider::new(&aws);
    let lb = LoadBalancer::application("web", subnets[..2].to_vec()).in_region(REGION);
    let (theirs, mine) = (urn(LoadBalancer::TYPE, "theirs"), urn(LoadBalancer::TYPE, "mine"));
    lbs.create(ctx(&theirs), &inputs(&lb)).await.unwrap();
    // The same settings: AWS would answer with the existing load balancer. It is not ours.
    let e = lbs.create(ctx(&mine), &inputs(&lb)).await.unwrap_err().message;
    assert!(e.contains(mine.as_str()) && e.contains(theirs.as_str()) && e.contains("name is taken"), "{e}");
    assert_eq!(load_balancer_count(&moto).await, 1);
    let tgs = TargetGroupProvider::new(&aws);
    let tg = TargetGroup::http("runner", vpc, 8080, "/_health").in_region(REGION);
    tgs.create(ctx(&theirs), &inputs(&tg)).await.unwrap();
    let e = tgs.create(ctx(&mine), &inputs(&tg)).await.unwrap_err().message;
    assert!(e.contains(theirs.as_str()), "{e}");
}

/// Each create's request lands and its answer is lost, with the SDK's retries on (3 attempts).
///
/// Load balancers, target groups and listeners have no idempotency token, and moto does not
/// refuse a repeat (its duplicate-name check compares freshly made ARNs, and it looks a
/// listener's port up among listeners keyed by ARN; AWS answers a repeated load balancer or
/// target group of the same settings with the existing one, and refuses a second listener on a
/// port). So their creates go without the SDK's retries, and the provider, before sending one
/// again, looks for the one made for this URN by its name (or port) and tag: the create
/// succeeds, sent once, with exactly one resource.
///
/// Rules answer a repeated create with `PriorityInUse`: the SDK retries, and the one made for
/// this URN is adopted. Either way exactly one resource exists afterwards, the one recorded.
#[tokio::test]
async fn creates_whose_answers_were_lost_leave_one_resource_each() {
    let moto = Moto::start();
    let (vpc, subnets, _) = network(&moto).await;
    let faulty = |op: &'static str, attempts: u32| {
        let proxy = FaultyProxy::start_with(moto.port, Faults::on(op, 1, Fault::LoseAnswer));
        let config =
            cairn_aws::AwsConfig { endpoint_url: Some(proxy.endpoint()), max_attempts: attempts, ..moto.config() };
        (proxy, Aws::new(config))
    };
    let (proxy, aws) = faulty("Action=CreateLoadBalancer", 3);
    let lb = LoadBalancer::application("web", subnets[..2].to_vec()).in_region(REGION);
    let lb_urn = urn(LoadBalancer::TYPE, "web");
    let lb_arn = LoadBalancerProvider::new(&aws).create(ctx(&lb_urn), &inputs(&lb)).await.unwrap().id;
    assert_eq!(proxy.signers_of(&["Action=CreateLoadBalancer"]).len(), 1, "found, not sent again");
    assert_eq!(load_balancer_count(&moto).await, 1);
    let lbs = LoadBalancerProvider::new(&moto.aws());
    assert_eq!(lbs.find(ctx(&lb_urn), &lbs.identity(&inputs(&lb))).await.unwrap().unwrap().id, lb_arn);

    let (proxy, aws) = faulty("Action=CreateTargetGroup", 3);
    let tg = TargetGroup::http("runner", vpc, 8080, "/_health").in_region(REGION);
    let tg_urn = urn(TargetGroup::TYPE, "tg");
    let tg_arn = TargetGroupProvider::new(&aws).create(ctx(&tg_urn), &inputs(&tg)).await.unwrap().id;
    assert_eq!(proxy.signers_of(&["Action=CreateTargetGroup"]).len(), 1);
    let groups = moto.elb(REGION).describe_target_groups().send().await.unwrap();
    assert_eq!(groups.target_groups().len(), 1);
    assert_eq!(groups.target_groups()[0].target_group_arn(), Some(tg_arn.as_str()));

    let (proxy, aws) = faulty("Action=CreateListener", 3);
    let l = Listener::http(lb_arn.clone(), 80, Action::forward(tg_arn.clone())).in_region(REGION);
    let l_urn = urn(Listener::TYPE, "http");
    let listener = ListenerProvider::new(&aws).create(ctx(&l_urn), &inputs(&l)).await.unwrap();
    assert_eq!(proxy.signers_of(&["Action=CreateListener"]).len(), 1);
    let all = moto.elb(REGION).describe_listeners().load_balancer_arn(&lb_arn).send().await.unwrap();
    assert_eq!(all.listeners().len(), 1);
    assert_eq!(all.listeners()[0].listener_arn(), Some(listener.id.as_str()));

    let (proxy, aws) = faulty("Action=CreateRule", 3);
    let rule = ListenerRule::new(
        listener.id.clone(),
        5,
        vec![Condition::PathPattern(vec!["/x".into()])],
        Action::forward(tg_arn),
    )
    .in_region(REGION);
    let created =
        ListenerRuleProvider::new(&aws).create(ctx(&urn(ListenerRule::TYPE, "x")), &inputs(&rule)).await.unwrap();
    assert_eq!(proxy.signers_of(&["Action=CreateRule"]).len(), 2);
    let all = moto.elb(REGION).describe_rules().listener_arn(&listener.id).send().await.unwrap();
    let custom: Vec<_> = all.rules().iter().filter(|r| r.is_default() != Some(true)).collect();
    assert_eq!(custom.len(), 1);
    assert_eq!(custom[0].rule_arn(), Some(created.id.as_str()));
}
