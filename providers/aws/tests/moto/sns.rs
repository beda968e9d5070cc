use cairn::provider::Provider;
use cairn::Resource;
use cairn_aws::sns::{Protocol, Subscription, SubscriptionProvider, Topic, TopicProvider};
use serde_json::{json, Value};

use crate::common::{ctx, urn, Moto};

fn inputs<T: serde::Serialize>(r: &T) -> Value {
    serde_json::to_value(r).unwrap()
}

fn topic(name: &str, region: &str) -> Topic {
    let mut t = Topic::new(name).in_region(region);
    t.display_name = "Alerts".into();
    t.tags.insert("team".into(), "platform".into());
    t
}

#[tokio::test]
async fn topic_create_read_update_replace_delete() {
    let moto = Moto::start();
    let p = TopicProvider::new(&moto.aws());
    let u = urn(Topic::TYPE, "alerts");
    let c = ctx(&u);
    let desired = topic("alerts", "us-east-1");
    let created = p.create(c, &inputs(&desired)).await.unwrap();
    assert_eq!(created.id, "arn:aws:sns:us-east-1:123456789012:alerts");
    assert_eq!(created.outputs, json!({"arn": created.id, "name": "alerts"}));
    let seen = p.read(c, &created.id, &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&desired));
    assert_eq!(seen.outputs, created.outputs);

    let mut changed = desired.clone();
    changed.display_name = String::new();
    changed.tags.clear();
    changed.tags.insert("owner".into(), "ops".into());
    let outputs = p.update(c, &created.id, &inputs(&desired), &inputs(&changed)).await.unwrap();
    assert_eq!(outputs, created.outputs);
    assert_eq!(p.read(c, &created.id, &inputs(&changed)).await.unwrap().unwrap().inputs, inputs(&changed));

    // Replace on a name change: create the new one first, then delete the old (the default).
    assert!(!Topic::DELETE_BEFORE_REPLACE && Topic::REPLACE_ON_CHANGE.contains(&"name"));
    let renamed = topic("alerts-v2", "us-east-1");
    let replacement = p.create(c, &inputs(&renamed)).await.unwrap();
    p.delete(c, &created.id, &inputs(&changed)).await.unwrap();
    assert_eq!(p.read(c, &created.id, &json!({})).await.unwrap(), None);
    assert_eq!(p.read(c, &replacement.id, &json!({})).await.unwrap().unwrap().inputs, inputs(&renamed));

    p.delete(c, &replacement.id, &inputs(&renamed)).await.unwrap();
    assert_eq!(p.read(c, &replacement.id, &inputs(&renamed)).await.unwrap(), None);
    p.delete(c, &replacement.id, &inputs(&renamed)).await.unwrap();
}

#[tokio::test]
async fn fifo_topic() {
    let moto = Moto::start();
    let p = TopicProvider::new(&moto.aws());
    let u = urn(Topic::TYPE, "orders");
    let mut t = Topic::new("orders.fifo").in_region("eu-west-1");
    t.fifo = true;
    let created = p.create(ctx(&u), &inputs(&t)).await.unwrap();
    assert_eq!(created.id, "arn:aws:sns:eu-west-1:123456789012:orders.fifo");
    assert_eq!(p.read(ctx(&u), &created.id, &inputs(&t)).await.unwrap().unwrap().inputs, inputs(&t));
    let mut wrong = Topic::new("orders").in_region("eu-west-1");
    wrong.fifo = true;
    let e = p.create(ctx(&u), &inputs(&wrong)).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("`.fifo`"), "{e}");
}

#[tokio::test]
async fn topic_find_import_and_drift() {
    let moto = Moto::start();
    let p = TopicProvider::new(&moto.aws());
    let u = urn(Topic::TYPE, "events");
    let t = topic("events", "eu-west-1");
    let created = p.create(ctx(&u), &inputs(&t)).await.unwrap();

    let found = p.find(ctx(&u), &p.identity(&inputs(&t))).await.unwrap().expect("found by urn tag");
    assert_eq!(found.id, created.id);
    let other = urn(Topic::TYPE, "other");
    assert_eq!(p.find(ctx(&other), &p.identity(&inputs(&t))).await.unwrap(), None);

    // Import by ARN, or by name in a region.
    let seen = p.read(ctx(&u), &created.id, &json!({})).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&t));
    let seen = p.read(ctx(&u), "events", &json!({"region": "eu-west-1"})).await.unwrap().unwrap();
    assert_eq!(seen.id, created.id);

    // Drift.
    let sns = moto.sns("eu-west-1");
    sns.set_topic_attributes()
        .topic_arn(&created.id)
        .attribute_name("DisplayName")
        .attribute_value("Changed")
        .send()
        .await
        .unwrap();
    let seen = p.read(ctx(&u), &created.id, &inputs(&t)).await.unwrap().unwrap();
    assert_eq!(seen.inputs["display_name"], json!("Changed"));
    sns.delete_topic().topic_arn(&created.id).send().await.unwrap();
    assert_eq!(p.read(ctx(&u), &created.id, &inputs(&t)).await.unwrap(), None);
}

#[tokio::test]
async fn topic_create_takes_over_only_its_own_topic() {
    let moto = Moto::start();
    let p = TopicProvider::new(&moto.aws());
    let u = urn(Topic::TYPE, "mine");
    // A topic of the same name made out of band: CreateTopic would return it; we refuse.
    moto.sns("us-east-1").create_topic().name("taken").send().await.unwrap();
    let e = p.create(ctx(&u), &inputs(&topic("taken", "us-east-1"))).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("already exists") && e.contains("not managed"), "{e}");

    // A create retried after a crash finds its own topic and converges it, without a duplicate.
    let first = p.create(ctx(&u), &inputs(&topic("mine", "us-east-1"))).await.unwrap();
    let mut again = topic("mine", "us-east-1");
    again.display_name = "Second try".into();
    let second = p.create(ctx(&u), &inputs(&again)).await.unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(p.read(ctx(&u), &first.id, &inputs(&again)).await.unwrap().unwrap().inputs, inputs(&again));
}

#[tokio::test]
async fn subscription_create_read_find_replace_delete() {
    let moto = Moto::start();
    let aws = moto.aws();
    let topics = TopicProvider::new(&aws);
    let p = SubscriptionProvider::new(&aws);
    let tu = urn(Topic::TYPE, "alerts");
    let t = topics.create(ctx(&tu), &inputs(&topic("alerts", "eu-west-1"))).await.unwrap();
    let topic_arn = t.id.clone();

    let u = urn(Subscription::TYPE, "oncall");
    let c = ctx(&u);
    let desired = Subscription {
        topic_arn: topic_arn.clone().into(),
        protocol: Protocol::Email,
        endpoint: "oncall@example.com".into(),
    };
    let created = p.create(c, &inputs(&desired)).await.unwrap();
    assert!(created.id.starts_with(&format!("{topic_arn}:")), "{}", created.id);
    assert_eq!(created.outputs, json!({"arn": created.id}));
    let seen = p.read(c, &created.id, &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!(seen.inputs, inputs(&desired));
    // Subscriptions cannot be tagged: found by topic, protocol and endpoint.
    let found = p.find(c, &p.identity(&inputs(&desired))).await.unwrap().expect("found");
    assert_eq!(found.id, created.id);
    let mut absent = inputs(&desired);
    absent["endpoint"] = json!("nobody@example.com");
    assert_eq!(p.find(c, &p.identity(&absent)).await.unwrap(), None);

    // Every property replaces it: create the new one, then delete the old.
    assert_eq!(Subscription::REPLACE_ON_CHANGE, &["topic_arn", "protocol", "endpoint"]);
    let https = Subscription {
        topic_arn: topic_arn.clone().into(),
        protocol: Protocol::Https,
        endpoint: "https://hooks.example.com/sns".into(),
    };
    let replacement = p.create(c, &inputs(&https)).await.unwrap();
    p.delete(c, &created.id, &inputs(&desired)).await.unwrap();
    assert_eq!(p.read(c, &created.id, &json!({})).await.unwrap(), None);
    assert_eq!(p.read(c, &replacement.id, &json!({})).await.unwrap().unwrap().inputs, inputs(&https));
    // In place there is nothing to change, and a change is refused.
    assert_eq!(
        p.update(c, &replacement.id, &inputs(&https), &inputs(&https)).await.unwrap(),
        json!({"arn": replacement.id})
    );
    assert!(p.update(c, &replacement.id, &inputs(&https), &inputs(&desired)).await.is_err());

    p.delete(c, &replacement.id, &inputs(&https)).await.unwrap();
    assert_eq!(p.read(c, &replacement.id, &json!({})).await.unwrap(), None);
    p.delete(c, &replacement.id, &inputs(&https)).await.unwrap();

    let mut bad = inputs(&desired);
    bad["protocol"] = json!("sms");
    let e = p.create(c, &bad).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("`protocol` must be email or https"), "{e}");
}
