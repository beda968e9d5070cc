//! CloudWatch metric alarms and dashboards against moto. (The end-to-end engine test with an
//! alarm and a dashboard is in `route53.rs`.)
//!
//! The CloudWatch SDK speaks only the Smithy RPC v2 CBOR protocol, which moto does not
//! understand (it answers 404): every CloudWatch call here goes through a [`CborProxy`] that
//! translates it to moto's JSON protocol and the answer back. The proxy passes every other
//! request (Route 53, SNS) through untouched, so one endpoint serves a whole program.

use aws_sdk_cloudwatch::types::{ComparisonOperator, Statistic};
use cairn::provider::Provider;
use cairn::Resource;
use cairn_aws::cloudwatch::{Dashboard, DashboardProvider, MetricAlarm, MetricAlarmProvider};
use cairn_aws::sns::{Topic, TopicProvider};
use cairn_aws::{Aws, AwsConfig};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use cairn_tests::moto::{header, read_message};

use crate::common::{ctx, urn, Moto};

/// A proxy in front of moto that turns CloudWatch's RPC v2 CBOR calls into JSON-protocol
/// calls (`X-Amz-Target: GraniteServiceVersion20100801.<Operation>`) and their JSON answers
/// into CBOR; every other request passes through as it is. One request per connection.
#[derive(Debug)]
pub struct CborProxy {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl CborProxy {
    pub async fn start(moto: &Moto) -> CborProxy {
        let upstream = moto.port;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else { return };
                tokio::spawn(async move {
                    let Some((head, body)) = read_message(&mut conn).await else { return };
                    let answer = match cbor_operation(&head) {
                        Some(op) => translate(upstream, &head, &body, &op).await,
                        None => forward(upstream, &head, &body).await,
                    };
                    let _ = conn.write_all(&answer).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        CborProxy { port, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An [`Aws`] context with `moto`'s settings whose every call goes through this proxy.
    pub fn aws(&self, moto: &Moto) -> Aws {
        Aws::new(AwsConfig { endpoint_url: Some(self.endpoint()), ..moto.config() })
    }

    /// A CloudWatch client for out-of-band changes, through this proxy.
    pub fn cloudwatch(&self, moto: &Moto, region: &str) -> aws_sdk_cloudwatch::Client {
        let conf = aws_sdk_cloudwatch::config::Builder::from(&moto.sdk(region)).endpoint_url(self.endpoint()).build();
        aws_sdk_cloudwatch::Client::from_conf(conf)
    }
}

impl Drop for CborProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The operation of an RPC v2 CBOR request: `POST /service/<Service>/operation/<Operation>`.
fn cbor_operation(head: &str) -> Option<(String, String)> {
    if header(head, "smithy-protocol") != Some("rpc-v2-cbor") {
        return None;
    }
    let path = head.lines().next()?.split_whitespace().nth(1)?;
    let rest = path.strip_prefix("/service/")?;
    let (service, op) = rest.split_once("/operation/")?;
    Some((service.to_string(), op.to_string()))
}

/// Sends a request to moto as it is; moto's whole answer.
async fn forward(upstream: u16, head: &str, body: &[u8]) -> Vec<u8> {
    let kept: Vec<&str> = head.lines().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    let mut request = format!("{}\r\nConnection: close\r\n\r\n", kept.join("\r\n")).into_bytes();
    request.extend_from_slice(body);
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).await.expect("connect to moto");
    up.write_all(&request).await.expect("write to moto");
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).await.expect("read from moto");
    answer
}

/// A CBOR call as a JSON-protocol call to moto, and moto's JSON answer as a CBOR answer.
async fn translate(upstream: u16, head: &str, body: &[u8], (service, op): &(String, String)) -> Vec<u8> {
    let input = if body.is_empty() { json!({}) } else { cbor_decode(body, &mut 0) };
    let json_body = serde_json::to_vec(&input).unwrap();
    let dropped = ["content-type", "content-length", "smithy-protocol", "accept", "connection"];
    let mut lines: Vec<String> = vec![format!("POST / HTTP/1.1")];
    lines.extend(
        head.lines()
            .skip(1)
            .filter(|l| !dropped.iter().any(|d| l.to_ascii_lowercase().starts_with(&format!("{d}:"))))
            .map(str::to_string),
    );
    lines.push("Content-Type: application/x-amz-json-1.0".into());
    lines.push(format!("X-Amz-Target: {service}.{op}"));
    lines.push(format!("Content-Length: {}", json_body.len()));
    let answer = forward(upstream, &lines.join("\r\n"), &json_body).await;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer") + 4;
    let answer_head = String::from_utf8_lossy(&answer[..split]).to_string();
    let status = answer_head.lines().next().unwrap_or("HTTP/1.1 500 Internal Server Error").to_string();
    let output: Value = serde_json::from_slice(&answer[split..]).unwrap_or_else(|_| json!({}));
    let mut cbor = Vec::new();
    cbor_encode(&output, "", &mut cbor);
    let mut out = format!(
        "{status}\r\nContent-Type: application/cbor\r\nsmithy-protocol: rpc-v2-cbor\r\nContent-Length: {}\r\nConnection: close\r\n",
        cbor.len()
    );
    if let Some(id) = header(answer_head.trim_end(), "x-amzn-requestid") {
        out.push_str(&format!("x-amzn-RequestId: {id}\r\n"));
    }
    if let Some(e) = header(answer_head.trim_end(), "x-amzn-query-error") {
        out.push_str(&format!("x-amzn-query-error: {e}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&cbor);
    out
}

/// One CBOR item (RFC 8949) as JSON: what CloudWatch's requests use (no byte strings).
fn cbor_decode(b: &[u8], i: &mut usize) -> Value {
    let initial = b[*i];
    *i += 1;
    let (major, info) = (initial >> 5, initial & 0x1f);
    let arg = |i: &mut usize| -> Option<u64> {
        let n = match info {
            0..=23 => return Some(info as u64),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            31 => return None,
            _ => panic!("bad CBOR additional information {info}"),
        };
        let v = b[*i..*i + n].iter().fold(0u64, |a, x| (a << 8) | *x as u64);
        *i += n;
        Some(v)
    };
    match major {
        0 => json!(arg(i).unwrap()),
        1 => json!(-1 - arg(i).unwrap() as i64),
        3 => match arg(i) {
            Some(n) => {
                let s = String::from_utf8(b[*i..*i + n as usize].to_vec()).unwrap();
                *i += n as usize;
                json!(s)
            }
            None => {
                let mut s = String::new();
                while b[*i] != 0xff {
                    s.push_str(cbor_decode(b, i).as_str().unwrap());
                }
                *i += 1;
                json!(s)
            }
        },
        4 => {
            let mut items = Vec::new();
            match arg(i) {
                Some(n) => (0..n).for_each(|_| items.push(cbor_decode(b, i))),
                None => {
                    while b[*i] != 0xff {
                        items.push(cbor_decode(b, i));
                    }
                    *i += 1;
                }
            }
            Value::Array(items)
        }
        5 => {
            let mut map = Map::new();
            let mut entry = |i: &mut usize| {
                let k = cbor_decode(b, i).as_str().unwrap().to_string();
                map.insert(k, cbor_decode(b, i));
            };
            match arg(i) {
                Some(n) => (0..n).for_each(|_| entry(i)),
                None => {
                    while b[*i] != 0xff {
                        entry(i);
                    }
                    *i += 1;
                }
            }
            Value::Object(map)
        }
        // Tags: timestamps (tag 1) are epoch seconds, as in the JSON protocol.
        6 => {
            arg(i);
            cbor_decode(b, i)
        }
        7 => match info {
            20 => json!(false),
            21 => json!(true),
            22 | 23 => Value::Null,
            25 => {
                let h = u16::from_be_bytes([b[*i], b[*i + 1]]);
                *i += 2;
                json!(half_to_f64(h))
            }
            26 => {
                let f = f32::from_be_bytes(b[*i..*i + 4].try_into().unwrap());
                *i += 4;
                json!(f as f64)
            }
            27 => {
                let f = f64::from_be_bytes(b[*i..*i + 8].try_into().unwrap());
                *i += 8;
                json!(f)
            }
            _ => panic!("unsupported CBOR simple value {info}"),
        },
        _ => panic!("unsupported CBOR major type {major} (byte strings are not used here)"),
    }
}

fn half_to_f64(h: u16) -> f64 {
    let (sign, exp, frac) = ((h >> 15) as i32, ((h >> 10) & 0x1f) as i32, (h & 0x3ff) as f64);
    let v = match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
    };
    if sign == 1 {
        -v
    } else {
        v
    }
}

fn cbor_head(major: u8, n: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend((n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend(n.to_be_bytes());
        }
    }
}

/// JSON as CBOR. Members that are null are left out; numbers under a timestamp member
/// (`…Timestamp`, `LastModified`) become tag-1 epoch seconds, as the SDK expects.
fn cbor_encode(v: &Value, key: &str, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(0xf6),
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Number(n) => {
            if key.ends_with("Timestamp") || key == "LastModified" {
                out.push(0xc1);
                out.push(0xfb);
                out.extend(n.as_f64().unwrap().to_be_bytes());
            } else if let Some(u) = n.as_u64() {
                cbor_head(0, u, out);
            } else if let Some(i) = n.as_i64() {
                cbor_head(1, (-1 - i) as u64, out);
            } else {
                out.push(0xfb);
                out.extend(n.as_f64().unwrap().to_be_bytes());
            }
        }
        Value::String(s) => {
            cbor_head(3, s.len() as u64, out);
            out.extend(s.as_bytes());
        }
        Value::Array(items) => {
            cbor_head(4, items.len() as u64, out);
            items.iter().for_each(|x| cbor_encode(x, key, out));
        }
        Value::Object(map) => {
            let present: Vec<(&String, &Value)> = map.iter().filter(|(_, v)| !v.is_null()).collect();
            cbor_head(5, present.len() as u64, out);
            for (k, v) in present {
                cbor_encode(&Value::String(k.clone()), "", out);
                cbor_encode(v, k, out);
            }
        }
    }
}

/// The gap the proxy bridges: moto does not route the SDK's RPC v2 CBOR calls at all.
#[tokio::test]
async fn moto_lacks_rpc_v2_cbor_so_cloudwatch_calls_go_through_the_proxy() {
    let moto = Moto::start();
    let direct = moto.cloudwatch("us-east-1").list_dashboards().send().await;
    let e = direct.expect_err("moto answered a CBOR call");
    let status = e.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(404), "{e:?}");
    let proxy = CborProxy::start(&moto).await;
    let through = proxy.cloudwatch(&moto, "us-east-1").list_dashboards().send().await.unwrap();
    assert!(through.dashboard_entries().is_empty());
}

fn inputs<T: serde::Serialize>(r: &T) -> Value {
    serde_json::to_value(r).unwrap()
}

fn alarm(name: &str, region: &str, topic_arn: &str) -> MetricAlarm {
    let mut a = MetricAlarm::new(name, "AWS/EC2", "CPUUtilization", "Average", 300, 80.0).in_region(region);
    a.dimensions.insert("AutoScalingGroupName".into(), "web".into());
    a.evaluation_periods = 3;
    a.datapoints_to_alarm = Some(2);
    a.treat_missing_data = "notBreaching".into();
    a.alarm_actions = vec![topic_arn.into()];
    a.description = "CPU is high".into();
    a.tags.insert("team".into(), "web".into());
    a
}

async fn topic(moto: &Moto, region: &str) -> String {
    let p = TopicProvider::new(&moto.aws());
    let u = urn(Topic::TYPE, &format!("alerts-{region}"));
    p.create(ctx(&u), &inputs(&Topic::new("alerts").in_region(region))).await.unwrap().id
}

#[tokio::test]
async fn alarm_create_read_update_replace_delete_in_two_regions() {
    let moto = Moto::start();
    let proxy = CborProxy::start(&moto).await;
    let p = MetricAlarmProvider::new(&proxy.aws(&moto));
    for region in ["us-east-1", "eu-west-1"] {
        let topic_arn = topic(&moto, region).await;
        let u = urn(MetricAlarm::TYPE, &format!("cpu-{region}"));
        let c = ctx(&u);
        let desired = alarm("cpu-high", region, &topic_arn);
        let created = p.create(c, &inputs(&desired)).await.unwrap();
        assert_eq!(created.id, format!("arn:aws:cloudwatch:{region}:123456789012:alarm:cpu-high"));
        assert_eq!(created.outputs, json!({"arn": created.id, "name": "cpu-high"}));
        let seen = p.read(c, &created.id, &inputs(&desired)).await.unwrap().unwrap();
        assert_eq!(seen.inputs, inputs(&desired));

        // Everything but the name changes in place: PutMetricAlarm rewrites the alarm.
        let mut changed = desired.clone();
        changed.threshold = 95.5;
        changed.statistic = "p99".into();
        changed.comparison_operator = "GreaterThanThreshold".into();
        changed.datapoints_to_alarm = None;
        changed.ok_actions = vec![topic_arn.clone().into()];
        changed.insufficient_data_actions = vec![topic_arn.clone().into()];
        changed.description = String::new();
        changed.tags.clear();
        changed.tags.insert("owner".into(), "ops".into());
        assert_eq!(p.update(c, &created.id, &inputs(&desired), &inputs(&changed)).await.unwrap(), created.outputs);
        assert_eq!(p.read(c, &created.id, &inputs(&changed)).await.unwrap().unwrap().inputs, inputs(&changed));
        assert_eq!(p.update(c, &created.id, &inputs(&changed), &inputs(&changed)).await.unwrap(), created.outputs);
        assert_eq!(p.read(c, &created.id, &inputs(&changed)).await.unwrap().unwrap().inputs, inputs(&changed));

        // A new name replaces it: the new one first, then the old one goes.
        assert!(!MetricAlarm::DELETE_BEFORE_REPLACE && MetricAlarm::REPLACE_ON_CHANGE.contains(&"name"));
        let renamed = alarm("cpu-very-high", region, &topic_arn);
        let replacement = p.create(c, &inputs(&renamed)).await.unwrap();
        p.delete(c, &created.id, &inputs(&changed)).await.unwrap();
        assert_eq!(p.read(c, &created.id, &inputs(&changed)).await.unwrap(), None);
        assert_eq!(p.read(c, &replacement.id, &inputs(&renamed)).await.unwrap().unwrap().inputs, inputs(&renamed));
        p.delete(c, &replacement.id, &inputs(&renamed)).await.unwrap();
        assert_eq!(p.read(c, &replacement.id, &inputs(&renamed)).await.unwrap(), None);
        p.delete(c, &replacement.id, &inputs(&renamed)).await.unwrap();
    }

    let u = urn(MetricAlarm::TYPE, "bad");
    let mut bad = inputs(&alarm("x", "us-east-1", "arn:aws:sns:us-east-1:123456789012:alerts"));
    bad["period"] = json!(45);
    let e = p.create(ctx(&u), &bad).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("`period`"), "{e}");
}

#[tokio::test]
async fn alarm_find_import_and_drift() {
    let moto = Moto::start();
    let proxy = CborProxy::start(&moto).await;
    let p = MetricAlarmProvider::new(&proxy.aws(&moto));
    let topic_arn = topic(&moto, "eu-west-1").await;
    let u = urn(MetricAlarm::TYPE, "cpu");
    let desired = alarm("cpu-high", "eu-west-1", &topic_arn);
    let created = p.create(ctx(&u), &inputs(&desired)).await.unwrap();

    let found = p.find(ctx(&u), &p.identity(&inputs(&desired))).await.unwrap().expect("found by urn tag");
    assert_eq!(found.id, created.id);
    let other = urn(MetricAlarm::TYPE, "other");
    assert_eq!(p.find(ctx(&other), &p.identity(&inputs(&desired))).await.unwrap(), None);

    // Import by ARN, or by name in a region.
    assert_eq!(p.read(ctx(&u), &created.id, &json!({})).await.unwrap().unwrap().inputs, inputs(&desired));
    let seen = p.read(ctx(&u), "cpu-high", &json!({"region": "eu-west-1"})).await.unwrap().unwrap();
    assert_eq!(seen.id, created.id);
    assert_eq!(seen.inputs, inputs(&desired));

    // Drift: rewritten out of band.
    proxy
        .cloudwatch(&moto, "eu-west-1")
        .put_metric_alarm()
        .alarm_name("cpu-high")
        .namespace("AWS/EC2")
        .metric_name("CPUUtilization")
        .statistic(Statistic::Maximum)
        .period(300)
        .evaluation_periods(3)
        .threshold(50.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .send()
        .await
        .unwrap();
    let seen = p.read(ctx(&u), &created.id, &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!((&seen.inputs["threshold"], &seen.inputs["statistic"]), (&json!(50.0), &json!("Maximum")));
    assert_eq!(seen.inputs["alarm_actions"], json!([]));
    proxy.cloudwatch(&moto, "eu-west-1").delete_alarms().alarm_names("cpu-high").send().await.unwrap();
    assert_eq!(p.read(ctx(&u), &created.id, &inputs(&desired)).await.unwrap(), None);
    p.delete(ctx(&u), &created.id, &inputs(&desired)).await.unwrap();
}

#[tokio::test]
async fn alarm_create_takes_over_only_its_own_alarm() {
    let moto = Moto::start();
    let proxy = CborProxy::start(&moto).await;
    let p = MetricAlarmProvider::new(&proxy.aws(&moto));
    let topic_arn = topic(&moto, "us-east-1").await;
    let u = urn(MetricAlarm::TYPE, "mine");
    // An alarm of the same name made out of band: PutMetricAlarm would overwrite it; refused.
    proxy
        .cloudwatch(&moto, "us-east-1")
        .put_metric_alarm()
        .alarm_name("taken")
        .namespace("AWS/EC2")
        .metric_name("CPUUtilization")
        .statistic(Statistic::Average)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    let e = p.create(ctx(&u), &inputs(&alarm("taken", "us-east-1", &topic_arn))).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("already exists") && e.contains("not managed"), "{e}");

    // A create retried after a crash finds its own alarm and converges it, without a duplicate.
    let first = p.create(ctx(&u), &inputs(&alarm("mine", "us-east-1", &topic_arn))).await.unwrap();
    let mut again = alarm("mine", "us-east-1", &topic_arn);
    again.threshold = 70.0;
    again.tags.clear();
    let second = p.create(ctx(&u), &inputs(&again)).await.unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(p.read(ctx(&u), &first.id, &inputs(&again)).await.unwrap().unwrap().inputs, inputs(&again));
}

const BODY: &str =
    r#"{"widgets": [{"type": "text", "x": 0, "y": 0, "width": 6, "height": 3, "properties": {"markdown": "hello"}}]}"#;

#[tokio::test]
async fn dashboard_create_read_update_replace_delete() {
    let moto = Moto::start();
    let proxy = CborProxy::start(&moto).await;
    let p = DashboardProvider::new(&proxy.aws(&moto));
    let u = urn(Dashboard::TYPE, "ops");
    let c = ctx(&u);
    let desired = Dashboard::new("ops", BODY).in_region("eu-west-1");
    let created = p.create(c, &inputs(&desired)).await.unwrap();
    assert_eq!(created.id, "ops");
    assert_eq!(created.outputs, json!({"arn": "arn:aws:cloudwatch::123456789012:dashboard/ops", "name": "ops"}));
    assert_eq!(p.read(c, "ops", &inputs(&desired)).await.unwrap().unwrap().inputs, inputs(&desired));

    // The body changes in place (PutDashboard).
    let body = r#"{"widgets": []}"#;
    let changed = Dashboard::new("ops", body).in_region("eu-west-1");
    assert_eq!(p.update(c, "ops", &inputs(&desired), &inputs(&changed)).await.unwrap(), created.outputs);
    assert_eq!(p.read(c, "ops", &inputs(&changed)).await.unwrap().unwrap().inputs, inputs(&changed));
    assert_eq!(p.update(c, "ops", &inputs(&changed), &inputs(&changed)).await.unwrap(), created.outputs);

    // A new name replaces it, deleting the old one first (names are unique in the account).
    assert!(Dashboard::DELETE_BEFORE_REPLACE && Dashboard::REPLACE_ON_CHANGE.contains(&"name"));
    p.delete(c, "ops", &inputs(&changed)).await.unwrap();
    assert_eq!(p.read(c, "ops", &inputs(&changed)).await.unwrap(), None);
    let renamed = Dashboard::new("ops-v2", body).in_region("eu-west-1");
    let replacement = p.create(c, &inputs(&renamed)).await.unwrap();
    assert_eq!(p.read(c, &replacement.id, &inputs(&renamed)).await.unwrap().unwrap().inputs, inputs(&renamed));
    p.delete(c, &replacement.id, &inputs(&renamed)).await.unwrap();
    assert_eq!(p.read(c, &replacement.id, &inputs(&renamed)).await.unwrap(), None);
    p.delete(c, &replacement.id, &inputs(&renamed)).await.unwrap();

    let e = p.create(c, &inputs(&Dashboard::new("ops", "{not json").in_region("eu-west-1"))).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("`body` is not valid JSON"), "{e}");
}

#[tokio::test]
async fn dashboard_find_import_reformatting_and_drift() {
    let moto = Moto::start();
    let proxy = CborProxy::start(&moto).await;
    let p = DashboardProvider::new(&proxy.aws(&moto));
    let u = urn(Dashboard::TYPE, "ops");
    let desired = Dashboard::new("ops", BODY).in_region("us-east-1");
    p.create(ctx(&u), &inputs(&desired)).await.unwrap();

    // A dashboard of that name exists: create refuses to overwrite it.
    let e = p.create(ctx(&u), &inputs(&desired)).await.unwrap_err().message;
    assert!(e.contains(u.as_str()) && e.contains("already exists") && e.contains("import"), "{e}");
    // Not tagged: found by its name.
    assert_eq!(p.find(ctx(&u), &p.identity(&inputs(&desired))).await.unwrap().unwrap().id, "ops");
    // Import by name in a region.
    assert_eq!(
        p.read(ctx(&u), "ops", &json!({"region": "us-east-1"})).await.unwrap().unwrap().inputs,
        inputs(&desired)
    );

    // The same document, reformatted by AWS: not drift.
    let cw = proxy.cloudwatch(&moto, "us-east-1");
    let compact = serde_json::to_string(&serde_json::from_str::<Value>(BODY).unwrap()).unwrap();
    cw.put_dashboard().dashboard_name("ops").dashboard_body(&compact).send().await.unwrap();
    assert_eq!(p.read(ctx(&u), "ops", &inputs(&desired)).await.unwrap().unwrap().inputs, inputs(&desired));
    // Another document: drift.
    cw.put_dashboard().dashboard_name("ops").dashboard_body(r#"{"widgets":[]}"#).send().await.unwrap();
    let seen = p.read(ctx(&u), "ops", &inputs(&desired)).await.unwrap().unwrap();
    assert_eq!(seen.inputs["body"], json!(r#"{"widgets":[]}"#));
    cw.delete_dashboards().dashboard_names("ops").send().await.unwrap();
    assert_eq!(p.read(ctx(&u), "ops", &inputs(&desired)).await.unwrap(), None);
    assert_eq!(p.find(ctx(&u), &p.identity(&inputs(&desired))).await.unwrap(), None);
    p.delete(ctx(&u), "ops", &inputs(&desired)).await.unwrap();
}
