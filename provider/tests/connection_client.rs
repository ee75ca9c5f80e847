//! `KargoClient` over real HTTP against a scripted fake API server: request shapes
//! (server-side apply, create, list paging), error mapping, watch-based waits, the wait for
//! the Kargo API, retries while Kargo starts, cancellation and timeouts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use terraform_provider_kargo::kargo::{
    ClientOptions, Error, Freight, KargoClient, Object as _, Project, Promotion, Stage, Warehouse,
    WatchStep, decode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "test-bearer-token-value";

#[derive(Clone, Debug)]
struct Recorded {
    method: String,
    /// Path and query, percent-decoded.
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

enum Reply {
    Json(u16, Value),
    Text(u16, &'static str),
    /// A watch: these lines, each after its delay, then the connection stays open.
    Stream(Vec<(Duration, Value)>),
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// A tiny HTTP/1.1 server answering each request with what `handler` says.
struct FakeApi {
    url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeApi {
    async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let log = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(socket, handler.clone(), log.clone()));
            }
        });
        Self { url, requests }
    }

    fn client(&self, options: ClientOptions) -> KargoClient {
        let mut config = kube::Config::new(self.url.parse().unwrap());
        config.auth_info.token = Some(TOKEN.to_string().into());
        KargoClient::from_config(config, options).unwrap()
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path() == path)
            .count()
    }
}

async fn serve(mut socket: TcpStream, handler: Handler, log: Arc<Mutex<Vec<Recorded>>>) {
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut socket, &mut buf).await else {
            return;
        };
        log.lock().unwrap().push(request.clone());
        let keep_open = match handler(&request) {
            Reply::Json(code, body) => write_body(&mut socket, code, &body.to_string()).await,
            Reply::Text(code, body) => write_body(&mut socket, code, body).await,
            Reply::Stream(lines) => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for (delay, line) in lines {
                    tokio::time::sleep(delay).await;
                    let chunk = format!("{}\n", line);
                    let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
                    if socket.write_all(framed.as_bytes()).await.is_err() {
                        return;
                    }
                }
                // Hold the watch open until the client goes away.
                let mut sink = [0u8; 64];
                let _ = socket.read(&mut sink).await;
                return;
            }
        };
        if !keep_open {
            return;
        }
    }
}

async fn write_body(socket: &mut TcpStream, code: u16, body: &str) -> bool {
    let text = format!(
        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(text.as_bytes()).await.is_ok()
}

async fn read_request(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Recorded> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let mut lines = head.split("\r\n");
            let mut first = lines.next()?.split(' ');
            let method = first.next()?.to_string();
            let target = percent_decode(first.next()?);
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| {
                    l.split_once(':')
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                })
                .collect();
            let length: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let mut chunk = [0u8; 4096];
                let n = socket.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + length].to_vec();
            buf.drain(..end + 4 + length);
            return Some(Recorded {
                method,
                target,
                headers,
                body,
            });
        }
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message})
}

fn stage(rv: &str) -> Value {
    json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
        "metadata": {"name": "dev", "namespace": "demo", "resourceVersion": rv, "uid": "u1"},
        "spec": {"shard": "a"}
    })
}

/// A Promotion named `dev` at `phase`: what waits typically watch.
fn promotion(rv: &str, phase: &str) -> Value {
    json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": {"name": "dev", "namespace": "demo", "resourceVersion": rv, "uid": "u1"},
        "spec": {"stage": "dev", "freight": "abc"},
        "status": {"phase": phase}
    })
}

fn promotion_list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "PromotionList", "metadata": {"resourceVersion": "10"}, "items": items})
}

fn stage_with_shard(shard: &str) -> Stage {
    decode(json!({"spec": {"shard": shard}})).unwrap()
}

fn discovery(resources: &[&str]) -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "kargo.akuity.io/v1alpha1",
        "resources": resources.iter().map(|r| json!({"name": r, "namespaced": true, "kind": "X", "verbs": ["get"]})).collect::<Vec<_>>()
    })
}

const ALL_RESOURCES: [&str; 9] = [
    "projects",
    "projectconfigs",
    "warehouses",
    "stages",
    "freights",
    "promotions",
    "promotiontasks",
    "clusterpromotiontasks",
    "clusterconfigs",
];

const STAGES: &str = "/apis/kargo.akuity.io/v1alpha1/namespaces/demo/stages";

#[tokio::test]
async fn apply_is_a_server_side_apply_with_the_field_manager() {
    let api = FakeApi::start(|r| {
        let mut stored = r.json();
        stored["metadata"]["resourceVersion"] = json!("7");
        Reply::Json(200, stored)
    })
    .await;
    let client = api.client(ClientOptions::default());
    let stored = client
        .apply(Some("demo"), "dev", &stage_with_shard("a"))
        .await
        .unwrap();
    assert_eq!(stored.resource_version(), Some("7"));
    assert_eq!(stored.spec.rest["shard"], "a");

    let forced = api.client(ClientOptions {
        field_manager: "team".into(),
        force_conflicts: true,
        ..Default::default()
    });
    forced
        .apply(None, "demo", &Project::default())
        .await
        .unwrap();

    let requests = api.requests();
    let first = &requests[0];
    assert_eq!(first.method, "PATCH");
    assert_eq!(first.path(), format!("{STAGES}/dev"));
    assert!(
        first
            .target
            .contains("fieldManager=terraform-provider-kargo"),
        "{}",
        first.target
    );
    assert!(!first.target.contains("force=true"), "{}", first.target);
    assert_eq!(
        first.header("content-type"),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(
        first.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let body = first.json();
    assert_eq!(body["apiVersion"], "kargo.akuity.io/v1alpha1");
    assert_eq!(body["kind"], "Stage");
    assert_eq!(
        body["metadata"],
        json!({"name": "dev", "namespace": "demo"})
    );
    assert_eq!(body["spec"]["shard"], "a");

    let second = &requests[1];
    assert_eq!(
        second.path(),
        "/apis/kargo.akuity.io/v1alpha1/projects/demo"
    );
    assert!(
        second.target.contains("fieldManager=team") && second.target.contains("force=true"),
        "{}",
        second.target
    );
}

#[tokio::test]
async fn status_subresource_and_merge_patches() {
    let api = FakeApi::start(|_| Reply::Json(200, stage("5"))).await;
    let client = api.client(ClientOptions::default());
    let patched: Stage = client
        .merge_patch(
            Some("demo"),
            "dev",
            &json!({"metadata": {"annotations": {"a": "b"}}}),
        )
        .await
        .unwrap();
    assert_eq!(patched.resource_version(), Some("5"));
    client
        .merge_patch_status::<Stage>(Some("demo"), "dev", &json!({"status": {"x": 1}}))
        .await
        .unwrap();
    let requests = api.requests();
    assert_eq!(requests[0].path(), format!("{STAGES}/dev"));
    assert_eq!(
        requests[0].header("content-type"),
        Some("application/merge-patch+json")
    );
    assert_eq!(requests[1].path(), format!("{STAGES}/dev/status"));
    assert_eq!(requests[1].json(), json!({"status": {"x": 1}}));
}

#[tokio::test]
async fn create_returns_the_generated_name() {
    let api = FakeApi::start(|r| {
        let mut stored = r.json();
        stored["metadata"]["name"] = json!("dev.01j.abc1234");
        Reply::Json(201, stored)
    })
    .await;
    let client = api.client(ClientOptions::default());
    let promo: Promotion = decode(
        json!({"metadata": {"generateName": "dev."}, "spec": {"stage": "dev", "freight": "abc"}}),
    )
    .unwrap();
    let stored = client.create(Some("demo"), &promo).await.unwrap();
    assert_eq!(stored.name(), "dev.01j.abc1234");
    let request = &api.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.path(),
        "/apis/kargo.akuity.io/v1alpha1/namespaces/demo/promotions"
    );
    assert!(
        request
            .target
            .contains("fieldManager=terraform-provider-kargo"),
        "{}",
        request.target
    );
    let body = request.json();
    assert_eq!(body["kind"], "Promotion");
    assert_eq!(body["metadata"]["namespace"], "demo");
}

#[tokio::test]
async fn get_maps_404_to_none_but_an_unserved_group_to_an_error() {
    let api = FakeApi::start(|r| match r.path() {
        p if p.ends_with("/stages/gone") => Reply::Json(
            404,
            json!({"kind": "Status", "status": "Failure", "code": 404, "reason": "NotFound",
                   "message": "stages.kargo.akuity.io \"gone\" not found",
                   "details": {"name": "gone", "group": "kargo.akuity.io", "kind": "stages"}}),
        ),
        p if p.ends_with("/stages/dev") => Reply::Json(200, stage("3")),
        _ => Reply::Text(404, "404 page not found"),
    })
    .await;
    let client = api.client(ClientOptions::default());
    assert_eq!(
        client.get::<Stage>(Some("demo"), "gone").await.unwrap(),
        None
    );
    let found = client
        .get::<Stage>(Some("demo"), "dev")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.name(), found.resource_version()), ("dev", Some("3")));
    assert_eq!(found.spec.rest["shard"], "a");
    let err = client
        .get::<Warehouse>(Some("demo"), "w")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::KargoNotInstalled { .. }), "{err:?}");
}

#[tokio::test]
async fn delete_reports_whether_the_object_existed() {
    let api = FakeApi::start(|r| {
        if r.path().ends_with("/gone") {
            Reply::Json(
                404,
                status(404, "NotFound", "stages.kargo.akuity.io \"gone\" not found"),
            )
        } else {
            Reply::Json(200, stage("4"))
        }
    })
    .await;
    let client = api.client(ClientOptions::default());
    assert!(client.delete::<Stage>(Some("demo"), "dev").await.unwrap());
    assert!(!client.delete::<Stage>(Some("demo"), "gone").await.unwrap());
    assert!(api.requests().iter().all(|r| r.method == "DELETE"));
}

#[tokio::test]
async fn list_follows_continue_tokens_and_passes_the_selector() {
    let api = FakeApi::start(|r| {
        if r.target.contains("continue=page2") {
            Reply::Json(200, json!({"metadata": {"resourceVersion": "8"}, "items": [{"metadata": {"name": "c"}}]}))
        } else {
            Reply::Json(200, json!({"metadata": {"continue": "page2", "resourceVersion": "7"}, "items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]}))
        }
    })
    .await;
    let client = api.client(ClientOptions::default());
    let list = client
        .list::<Freight>(Some("demo"), Some("kargo.akuity.io/alias=x"))
        .await
        .unwrap();
    let names: Vec<&str> = list.items.iter().map(|i| i.name()).collect();
    assert_eq!(names, vec!["a", "b", "c"]);
    assert_eq!(
        list.resource_version.as_deref(),
        Some("7"),
        "the version the first page was read at"
    );
    let requests = api.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|r| r.target.contains("labelSelector=kargo.akuity.io/alias=x")),
        "{requests:?}"
    );
}

#[tokio::test]
async fn failures_become_typed_errors() {
    let api = FakeApi::start(|r| match r.path().rsplit('/').next().unwrap_or_default() {
        "conflict" => Reply::Json(
            409,
            json!({"kind": "Status", "status": "Failure", "code": 409, "reason": "Conflict",
                   "message": "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.shard",
                   "details": {"causes": [{"reason": "FieldManagerConflict", "message": "conflict with \"kubectl\"", "field": ".spec.shard"}]}}),
        ),
        "denied" => Reply::Json(403, status(403, "Forbidden", "stages \"denied\" is forbidden")),
        "unauth" => Reply::Json(401, status(401, "Unauthorized", "Unauthorized")),
        _ => Reply::Json(
            500,
            status(500, "InternalError", "Internal error occurred: failed calling webhook \"stage.kargo.akuity.io\": connection refused"),
        ),
    })
    .await;
    let client = api.client(ClientOptions::default());
    let err = client
        .apply(Some("demo"), "conflict", &Stage::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { managers, .. } if managers == &vec!["kubectl".to_string()]),
        "{err:?}"
    );
    let err = client
        .apply(Some("demo"), "denied", &Stage::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
    let err = client
        .get::<Stage>(Some("demo"), "unauth")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unauthorized { host } if host == &api.url),
        "{err:?}"
    );
    assert!(!err.to_string().contains(TOKEN));
    let err = client
        .apply(Some("demo"), "webhook", &Stage::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WebhookUnavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn unreachable_api_names_the_host() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let client = KargoClient::from_config(
        kube::Config::new(url.parse().unwrap()),
        ClientOptions::default(),
    )
    .unwrap();
    let err = client.get::<Stage>(Some("demo"), "dev").await.unwrap_err();
    let Error::Unreachable { host, reason } = &err else {
        panic!("expected Unreachable, got {err:?}")
    };
    assert_eq!(host, &url);
    assert!(!reason.is_empty());
}

#[tokio::test]
async fn waits_for_the_kargo_api_then_caches_success() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let api = FakeApi::start(move |r| {
        assert_eq!(r.path(), "/apis/kargo.akuity.io/v1alpha1");
        match seen.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::Text(404, "404 page not found"),
            1 => Reply::Json(200, discovery(&["projects", "stages"])),
            _ => Reply::Json(200, discovery(&ALL_RESOURCES)),
        }
    })
    .await;
    let client = api.client(ClientOptions::default());
    assert!(!client.kargo_api_ready());
    let cancel = CancellationToken::new();
    client
        .wait_for_kargo_api(Duration::from_secs(10), &cancel)
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(client.kargo_api_ready());
    client.ensure_kargo_api(&cancel).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "a second wait must not ask the cluster again"
    );
}

#[tokio::test]
async fn kargo_api_wait_times_out_with_the_reason() {
    let api = FakeApi::start(|_| Reply::Text(404, "404 page not found")).await;
    let client = api.client(ClientOptions::default());
    let started = Instant::now();
    let err = client
        .wait_for_kargo_api(Duration::from_millis(900), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let Error::Timeout { what, last_seen } = &err else {
        panic!("expected Timeout, got {err:?}")
    };
    assert!(
        what.contains("kargo.akuity.io/v1alpha1") && what.contains(&api.url),
        "{what}"
    );
    assert!(last_seen.contains("404 page not found"), "{last_seen}");
    assert!(api.count("GET", "/apis/kargo.akuity.io/v1alpha1") >= 2);
    assert!(!client.kargo_api_ready());
}

#[tokio::test]
async fn kargo_api_wait_fails_fast_on_forbidden() {
    let api =
        FakeApi::start(|_| Reply::Json(403, status(403, "Forbidden", "discovery is forbidden")))
            .await;
    let client = api.client(ClientOptions::default());
    let err = client
        .wait_for_kargo_api(Duration::from_secs(30), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
    assert_eq!(api.requests().len(), 1);
}

#[tokio::test]
async fn writes_are_retried_while_kargo_starts() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let api = FakeApi::start(move |r| match seen.fetch_add(1, Ordering::SeqCst) {
        0 => Reply::Json(
            500,
            status(
                500,
                "InternalError",
                "failed calling webhook \"x\": no endpoints available",
            ),
        ),
        1 => Reply::Json(
            503,
            status(
                503,
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            ),
        ),
        _ => Reply::Json(200, r.json()),
    })
    .await;
    let client = api.client(ClientOptions::default());
    let cancel = CancellationToken::new();
    let empty = Stage::default();
    let stored = client
        .retry_while_kargo_starting("Stage \"demo/dev\"", &cancel, || {
            client.apply(Some("demo"), "dev", &empty)
        })
        .await
        .unwrap();
    assert_eq!(stored.name(), "dev");
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // Errors that waiting cannot fix are returned at once.
    let api =
        FakeApi::start(|_| Reply::Json(422, status(422, "Invalid", "spec.x: Invalid value"))).await;
    let client = api.client(ClientOptions::default());
    let err = client
        .retry_while_kargo_starting("Stage", &cancel, || {
            client.apply(Some("demo"), "dev", &empty)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    assert_eq!(api.requests().len(), 1);

    // And the retries are bounded by api_wait_timeout.
    let api =
        FakeApi::start(|_| Reply::Json(503, status(503, "ServiceUnavailable", "unavailable")))
            .await;
    let client = api.client(ClientOptions {
        api_wait_timeout: Duration::from_millis(600),
        ..Default::default()
    });
    let err = client
        .retry_while_kargo_starting("Stage \"demo/dev\"", &cancel, || {
            client.get::<Stage>(Some("demo"), "dev")
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { what, .. } if what == "Kargo to accept Stage \"demo/dev\""),
        "{err:?}"
    );
}

fn watch_server(
    events: Vec<(Duration, Value)>,
    initial: Vec<Value>,
) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |r: &Recorded| {
        assert!(
            r.target.contains("fieldSelector=metadata.name=dev"),
            "{}",
            r.target
        );
        assert!(
            r.path().ends_with("/namespaces/demo/promotions"),
            "{}",
            r.target
        );
        if r.target.contains("watch=true") {
            Reply::Stream(events.clone())
        } else {
            Reply::Json(200, promotion_list(initial.clone()))
        }
    }
}

#[tokio::test]
async fn wait_until_follows_the_watch() {
    let events = vec![
        (
            Duration::from_millis(50),
            json!({"type": "MODIFIED", "object": promotion("11", "Running")}),
        ),
        (
            Duration::from_millis(50),
            json!({"type": "MODIFIED", "object": promotion("12", "Succeeded")}),
        ),
    ];
    let api = FakeApi::start(watch_server(events, vec![promotion("10", "Pending")])).await;
    let client = api.client(ClientOptions::default());
    let mut phases = Vec::new();
    let result = client
        .watch_until(
            Some("demo"),
            "dev",
            "Promotion \"demo/dev\" to succeed",
            Duration::from_secs(10),
            &CancellationToken::new(),
            |object: Option<&Promotion>| {
                let phase = object.map(|o| o.phase().unwrap_or_default().to_string());
                phases.push(phase.clone());
                match phase.as_deref() {
                    Some("Succeeded") => WatchStep::Done(
                        object.and_then(|o| o.resource_version().map(str::to_string)),
                    ),
                    _ => WatchStep::Continue,
                }
            },
        )
        .await
        .unwrap();
    assert_eq!(result.as_deref(), Some("12"));
    assert_eq!(
        phases,
        vec![
            Some("Pending".to_string()),
            Some("Running".to_string()),
            Some("Succeeded".to_string())
        ]
    );
    // One list and one watch: waiting is not a polling loop.
    let requests = api.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests.iter().all(|r| r.method == "GET"));
}

#[tokio::test]
async fn watch_step_can_fail_the_wait() {
    let events = vec![(
        Duration::from_millis(20),
        json!({"type": "MODIFIED", "object": promotion("11", "Errored")}),
    )];
    let api = FakeApi::start(watch_server(events, vec![promotion("10", "Running")])).await;
    let client = api.client(ClientOptions::default());
    let err = client
        .watch_until::<Promotion, ()>(
            Some("demo"),
            "dev",
            "x",
            Duration::from_secs(10),
            &CancellationToken::new(),
            |object| match object.and_then(Promotion::phase) {
                Some("Errored") => WatchStep::Fail(Error::Other("promotion errored".into())),
                _ => WatchStep::Continue,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "promotion errored");
}

#[tokio::test]
async fn wait_deleted_sees_the_delete_event() {
    let events = vec![(
        Duration::from_millis(50),
        json!({"type": "DELETED", "object": promotion("11", "Succeeded")}),
    )];
    let api = FakeApi::start(watch_server(events, vec![promotion("10", "Succeeded")])).await;
    let client = api.client(ClientOptions::default());
    client
        .wait_deleted::<Promotion>(
            Some("demo"),
            "dev",
            Duration::from_secs(10),
            &CancellationToken::new(),
        )
        .await
        .unwrap();

    // Already gone: returns at once from the initial list.
    let api = FakeApi::start(watch_server(vec![], vec![])).await;
    let client = api.client(ClientOptions::default());
    let started = Instant::now();
    client
        .wait_deleted::<Promotion>(
            Some("demo"),
            "dev",
            Duration::from_secs(10),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn waits_time_out_with_the_last_state_seen() {
    let api = FakeApi::start(watch_server(vec![], vec![promotion("10", "Running")])).await;
    let client = api.client(ClientOptions::default());
    let started = Instant::now();
    let err = client
        .wait_until(
            Some("demo"),
            "dev",
            "Promotion \"demo/dev\" to succeed",
            Duration::from_millis(500),
            &CancellationToken::new(),
            |o: Option<&Promotion>| o.is_some_and(|o| o.phase() == Some("Succeeded")),
        )
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    let Error::Timeout { what, last_seen } = &err else {
        panic!("expected Timeout, got {err:?}")
    };
    assert_eq!(what, "Promotion \"demo/dev\" to succeed");
    assert!(last_seen.contains("phase Running"), "{last_seen}");
}

#[tokio::test]
async fn cancellation_ends_waits_promptly() {
    let api = FakeApi::start(watch_server(vec![], vec![promotion("10", "Running")])).await;
    let client = Arc::new(api.client(ClientOptions::default()));
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let err = client
        .wait_until(
            Some("demo"),
            "dev",
            "never",
            Duration::from_secs(60),
            &cancel,
            |_: Option<&Promotion>| false,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );

    // The Kargo API wait and the write retries honour it too.
    let api = FakeApi::start(|_| Reply::Text(404, "404 page not found")).await;
    let client = api.client(ClientOptions::default());
    let cancel = CancellationToken::new();
    cancel.cancel();
    let err = client
        .wait_for_kargo_api(Duration::from_secs(60), &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err:?}");
}

#[tokio::test]
async fn server_version_reads_git_version() {
    let api = FakeApi::start(|r| {
        assert_eq!(r.path(), "/version");
        Reply::Json(
            200,
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.2"}),
        )
    })
    .await;
    let client = api.client(ClientOptions::default());
    assert_eq!(client.server_version().await.unwrap(), "v1.33.2");
}
