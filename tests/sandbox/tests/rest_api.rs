//! Kargo's REST API (`/v1beta1`) as the sandbox serves it beside the Kubernetes API: admin
//! login and its JWT, API tokens bound to Kargo Roles, `/resources`, reads and actions, and
//! every route checked against Kargo's own swagger.

mod core_support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

use core_support::{start, wait_until};
use kargo_sandbox::{HttpFault, Options, Sandbox};

/// A plain HTTPS client for the REST API.
struct Rest {
    authority: String,
    tls: Arc<rustls::ClientConfig>,
}

impl Rest {
    fn new(server_url: &str, ca_pem: &str) -> Rest {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Rest {
            authority: server_url.strip_prefix("https://").unwrap().to_string(),
            tls: Arc::new(cfg),
        }
    }

    fn of(sandbox: &Sandbox) -> Rest {
        Rest::new(sandbox.server_url(), sandbox.ca_pem())
    }

    /// Sends a request; the status and the body (JSON, `Null` when empty).
    async fn send(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> (u16, Value) {
        let (code, _, bytes) = self.send_raw(method, path, auth, content_type, body).await;
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("JSON body: {}", String::from_utf8_lossy(&bytes)))
        };
        (code, v)
    }

    /// Sends a request; the status, the content type and the body as it came.
    async fn send_raw(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> (u16, String, Bytes) {
        let mut sender = self.connect().await;
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.authority)
            .header(http::header::CONTENT_TYPE, content_type);
        if let Some(a) = auth {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {a}"));
        }
        let resp = sender
            .send_request(req.body(Full::new(body.into())).unwrap())
            .await
            .unwrap();
        let code = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (code, content_type, bytes)
    }

    /// A new HTTPS connection to the sandbox, trusting its CA.
    async fn connect(&self) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
        let tcp = tokio::net::TcpStream::connect(&self.authority)
            .await
            .unwrap();
        let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender
    }

    /// Opens a server-sent event stream: its status, content type and events.
    async fn events(&self, path: &str, token: &str) -> (u16, String, Events) {
        let mut sender = self.connect().await;
        let req = http::Request::get(path)
            .header(http::header::HOST, &self.authority)
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let code = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (
            code,
            content_type,
            Events {
                body: resp.into_body(),
                buf: String::new(),
            },
        )
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.send("GET", path, Some(token), "application/json", "")
            .await
    }

    async fn post_json(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(
            "POST",
            path,
            Some(token),
            "application/json",
            body.to_string(),
        )
        .await
    }

    async fn resources(&self, method: &str, query: &str, token: &str, yaml: &str) -> (u16, Value) {
        self.send(
            method,
            &format!("/v1beta1/resources{query}"),
            Some(token),
            "text/plain",
            yaml.to_string(),
        )
        .await
    }

    async fn login(&self, password: &str) -> String {
        let (code, body) = self
            .send(
                "POST",
                "/v1beta1/login",
                Some(password),
                "application/json",
                "",
            )
            .await;
        assert_eq!(code, 200, "{body}");
        body["idToken"].as_str().unwrap().to_string()
    }
}

/// A server-sent event stream.
struct Events {
    body: hyper::body::Incoming,
    buf: String,
}

impl Events {
    /// The next event's raw text (`data: …` or `event: …` lines).
    async fn next_raw(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let event = self.buf[..i].to_string();
                self.buf.drain(..i + 2);
                return event;
            }
            let frame = tokio::time::timeout(Duration::from_secs(20), self.body.frame())
                .await
                .expect("an event within 20s")
                .expect("the stream stays open")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buf.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    /// The next `data:` event, parsed.
    async fn next(&mut self) -> Value {
        let raw = self.next_raw().await;
        let data = raw
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("{raw}"));
        serde_json::from_str(data).unwrap()
    }
}

fn claims(jwt: &str) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let dec = |p: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    (dec(parts[0]), dec(parts[1]))
}

fn err(msg: &str) -> Value {
    json!({ "error": msg })
}

const PIPELINE: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: w, namespace: p}
spec:
  subscriptions: [{image: {repoURL: ghcr.io/acme/app}}]
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: dev, namespace: p}
spec:
  requestedFreight: [{origin: {kind: Warehouse, name: w}, sources: {direct: true}}]
  promotionTemplate: {spec: {steps: [{uses: git-clone, as: clone}, {uses: git-push, as: push}]}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: prod, namespace: p}
spec:
  requestedFreight: [{origin: {kind: Warehouse, name: w}, sources: {stages: [dev]}}]
  promotionTemplate: {spec: {steps: [{uses: git-clone, as: clone}, {uses: git-push, as: push}]}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata: {name: p}
"#;

/// Project `p` (listed last: Projects are created first), warehouse `w`, stages `dev` and
/// `prod`, and Freight for tag 1.0.0: its name and alias.
async fn pipeline(sandbox: &Sandbox, rest: &Rest, token: &str) -> (String, String) {
    let (code, body) = rest.resources("POST", "", token, PIPELINE).await;
    assert_eq!(code, 201, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert!(results.iter().all(|r| r.get("error").is_none()), "{body}");
    assert_eq!(results[0]["createdResourceManifest"]["kind"], "Project");
    let out = sandbox
        .control(
            "publish",
            &json!({"project": "p", "warehouse": "w", "images": [{"repoURL": "ghcr.io/acme/app", "tag": "1.0.0"}]}),
        )
        .unwrap();
    (
        out["name"].as_str().unwrap().to_string(),
        out["alias"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn unauthenticated_requests_get_kargos_401_bodies() {
    let sandbox = start(Options::default()).await;
    let rest = Rest::of(&sandbox);
    let (code, body) = rest
        .send("GET", "/v1beta1/projects", None, "application/json", "")
        .await;
    assert_eq!((code, body), (401, err("no token provided")));
    for bad in [
        "not-a-jwt".to_string(),
        // The sandbox's admin token is a Kubernetes token, not a Kargo one.
        sandbox.token().to_string(),
        // A well-formed JWT signed with another key.
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD
                .encode(br#"{"iss":"kargo-sandbox-api","sub":"admin","exp":99999999999}"#),
            URL_SAFE_NO_PAD.encode([0u8; 32])
        ),
    ] {
        let (code, body) = rest.get("/v1beta1/projects", &bad).await;
        assert_eq!((code, body), (401, err("invalid token")), "{bad}");
    }
    let token = rest.login(sandbox.admin_password()).await;
    let (code, body) = rest.get("/v1beta1/nothing-here", &token).await;
    assert_eq!((code, body), (404, err("404 page not found")));
    let (code, body) = rest.get("/v1beta1/projects/missing/stages", &token).await;
    assert_eq!(
        (code, body),
        (404, err("projects.kargo.akuity.io \"missing\" not found"))
    );
    // Every request is in the request log under the route it matched.
    let log = sandbox.requests();
    let rest_calls: Vec<_> = log.iter().filter(|r| r.verb == "rest").collect();
    assert_eq!(rest_calls.len(), 7);
    assert_eq!(rest_calls[0].resource, "/v1beta1/projects");
    assert_eq!(rest_calls[0].code, 401);
    assert_eq!(rest_calls[6].user.as_deref(), Some("admin"));
}

#[tokio::test]
async fn http_faults_reach_the_rest_api() {
    let sandbox = start(Options::default()).await;
    let rest = Rest::of(&sandbox);
    let token = rest.login(sandbox.admin_password()).await;
    sandbox
        .inject_fault(
            HttpFault::unavailable()
                .verb("rest")
                .resource("/v1beta1/projects")
                .times(1),
        )
        .unwrap();
    assert_eq!(
        rest.get("/v1beta1/projects", &token).await,
        (503, err("service unavailable"))
    );
    assert_eq!(rest.get("/v1beta1/projects", &token).await.0, 200);
    // A refused port is the API server being down, for both APIs.
    sandbox
        .inject_fault(HttpFault::refuse(Duration::from_secs(30)))
        .unwrap();
    // While the listener closes, a connection under way may be reset rather than refused.
    wait_until(20, "connections to be refused", async || {
        let result = tokio::net::TcpStream::connect(&rest.authority).await;
        result
            .err()
            .filter(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
    })
    .await;
    sandbox.clear_faults().unwrap();
    let back = wait_until(20, "connections to be accepted again", async || {
        tokio::net::TcpStream::connect(&rest.authority).await.ok()
    })
    .await;
    drop(back);
    assert_eq!(rest.get("/v1beta1/projects", &token).await.0, 200);
    let codes: Vec<u16> = sandbox
        .requests()
        .iter()
        .filter(|r| r.verb == "rest")
        .map(|r| r.code)
        .collect();
    assert_eq!(codes, vec![200, 503, 200, 200]);
}

#[tokio::test]
async fn admin_login_issues_an_hs256_jwt_that_expires_on_the_sandbox_clock() {
    let sandbox = start(
        Options::default()
            .admin_password("s3cret")
            .admin_token_ttl(Duration::from_secs(60)),
    )
    .await;
    let rest = Rest::of(&sandbox);
    assert_eq!(sandbox.admin_password(), "s3cret");
    let (code, body) = rest
        .send("POST", "/v1beta1/login", None, "application/json", "")
        .await;
    assert_eq!((code, body), (400, err("Authorization header is required")));
    let (code, body) = rest
        .send(
            "POST",
            "/v1beta1/login",
            Some("wrong"),
            "application/json",
            "",
        )
        .await;
    assert_eq!((code, body), (403, err("invalid password")));

    let token = rest.login("s3cret").await;
    let (header, payload) = claims(&token);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(payload["sub"], "admin");
    assert_eq!(
        payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap(),
        60
    );
    let (code, body) = rest.get("/v1beta1/projects", &token).await;
    assert_eq!((code, body), (200, json!({"items": [], "total": 0})));
    // A tampered payload fails the signature check.
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(
                &json!({"iss": payload["iss"], "sub": "admin", "exp": 99999999999i64})
            )
            .unwrap()
        ),
        parts[2]
    );
    assert_eq!(
        rest.get("/v1beta1/projects", &forged).await,
        (401, err("invalid token"))
    );

    sandbox.advance_clock(Duration::from_secs(61));
    assert_eq!(
        rest.get("/v1beta1/projects", &token).await,
        (401, err("invalid token"))
    );
    let fresh = rest.login("s3cret").await;
    assert_eq!(rest.get("/v1beta1/projects", &fresh).await.0, 200);
}

#[tokio::test]
async fn resources_create_update_and_delete_as_kargo_does() {
    let sandbox = start(Options::default()).await;
    let rest = Rest::of(&sandbox);
    let token = rest.login(sandbox.admin_password()).await;
    let (code, body) = rest.resources("POST", "", &token, "").await;
    assert_eq!(
        (code, body),
        (400, err("no resources found in request body"))
    );
    pipeline(&sandbox, &rest, &token).await;
    let (_, project) = rest.get("/v1beta1/projects/p", &token).await;
    assert_eq!(
        project["metadata"]["annotations"]["kargo.akuity.io/create-actor"],
        "admin"
    );

    // One manifest: its error is the response.
    let project_yaml = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata: {name: p}\n";
    assert_eq!(
        rest.resources("POST", "", &token, project_yaml).await,
        (409, err("project.kargo.akuity.io \"p\" already exists"))
    );
    // Several: one result each, errors inside, JSON documents accepted as YAML.
    let two = format!(
        "{project_yaml}---\n{}\n",
        json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
               "metadata": {"name": "w2", "namespace": "p"},
               "spec": {"subscriptions": [{"image": {"repoURL": "ghcr.io/acme/other"}}]}})
    );
    let (code, body) = rest.resources("POST", "", &token, &two).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        body["results"][0],
        err("create resource: project.kargo.akuity.io \"p\" already exists")
    );
    assert_eq!(
        body["results"][1]["createdResourceManifest"]["metadata"]["name"],
        "w2"
    );

    // PUT is a full update with the live resourceVersion: labels not sent are gone.
    let labelled = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {name: w2, namespace: p, labels: {team: a}}\nspec:\n  subscriptions: [{image: {repoURL: ghcr.io/acme/other}}]\n";
    let (code, body) = rest.resources("PUT", "", &token, labelled).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["results"][0]["updatedResourceManifest"]["metadata"]["labels"]["team"],
        "a"
    );
    let replaced = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {name: w2, namespace: p}\nspec:\n  subscriptions: [{image: {repoURL: ghcr.io/acme/third}}]\n";
    assert_eq!(rest.resources("PUT", "", &token, replaced).await.0, 200);
    let (_, w2) = rest.get("/v1beta1/projects/p/warehouses/w2", &token).await;
    assert!(w2["metadata"].get("labels").is_none(), "{w2}");
    assert_eq!(
        w2["spec"]["subscriptions"][0]["image"]["repoURL"],
        "ghcr.io/acme/third"
    );

    let missing = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {name: w3, namespace: p}\nspec:\n  subscriptions: [{image: {repoURL: ghcr.io/acme/x}}]\n";
    assert_eq!(
        rest.resources("PUT", "", &token, missing).await,
        (404, err("resource does not exist"))
    );
    let (code, body) = rest.resources("PUT", "?upsert=true", &token, missing).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["results"][0]["createdResourceManifest"]["metadata"]["name"],
        "w3"
    );

    // The CRD schema still applies.
    let invalid = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {name: w4, namespace: p}\nspec: {subscriptions: []}\n";
    let (code, body) = rest.resources("POST", "", &token, invalid).await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("spec.subscriptions"),
        "{body}"
    );

    let (code, body) = rest.resources("DELETE", "", &token, missing).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["results"][0]["deletedResourceManifest"]["metadata"]["name"],
        "w3"
    );
    assert_eq!(
        rest.get("/v1beta1/projects/p/warehouses/w3", &token).await,
        (404, err("warehouses.kargo.akuity.io \"w3\" not found"))
    );

    let big = "#".repeat(4 * 1024 * 1024 + 1);
    assert_eq!(
        rest.resources("POST", "", &token, &big).await,
        (413, err("request body too large"))
    );
}

#[tokio::test]
async fn reads_promotions_approvals_and_refreshes() {
    let sandbox = start(Options::default()).await;
    let rest = Rest::of(&sandbox);
    let token = rest.login(sandbox.admin_password()).await;
    let (freight, alias) = pipeline(&sandbox, &rest, &token).await;

    let (code, projects) = rest.get("/v1beta1/projects", &token).await;
    assert_eq!(code, 200);
    assert_eq!(projects["total"], 1);
    assert_eq!(projects["items"][0]["metadata"]["name"], "p");
    let (code, stages) = rest.get("/v1beta1/projects/p/stages", &token).await;
    assert_eq!(code, 200);
    assert_eq!(stages["kind"], "StageList");
    assert_eq!(stages["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        rest.get("/v1beta1/projects/p/stages/dev", &token).await.1["metadata"]["name"],
        "dev"
    );
    assert_eq!(
        rest.get("/v1beta1/projects/p/warehouses", &token).await.1["kind"],
        "WarehouseList"
    );
    let (_, query) = rest.get("/v1beta1/projects/p/freight", &token).await;
    assert_eq!(
        query["groups"][""]["items"][0]["metadata"]["name"],
        freight.as_str()
    );
    assert_eq!(
        rest.get("/v1beta1/projects/p/freight?stage=dev", &token)
            .await,
        (
            400,
            err(
                "the kargo-sandbox does not implement the query parameter \"stage\" of GET /v1beta1/projects/{project}/freight"
            )
        )
    );
    let (_, by_alias) = rest
        .get(&format!("/v1beta1/projects/p/freight/{alias}"), &token)
        .await;
    assert_eq!(by_alias["metadata"]["name"], freight.as_str());
    assert_eq!(
        rest.get("/v1beta1/projects/p/freight/nope", &token).await,
        (404, err("Freight \"nope\" not found in project \"p\""))
    );

    // Promotion requests as Kargo checks them.
    let promote = |stage: &str| format!("/v1beta1/projects/p/stages/{stage}/promotions");
    assert_eq!(
        rest.post_json(
            &promote("dev"),
            &token,
            json!({"freight": freight, "freightAlias": alias})
        )
        .await,
        (
            400,
            err("exactly one of freight, freightAlias, or origin must be provided")
        )
    );
    assert_eq!(
        rest.post_json(&promote("qa"), &token, json!({"freight": freight}))
            .await,
        (404, err("Stage \"qa\" not found in project \"p\""))
    );
    assert_eq!(
        rest.post_json(&promote("dev"), &token, json!({"freightAlias": "nope"}))
            .await,
        (
            404,
            err("Freight with alias \"nope\" not found in project \"p\"")
        )
    );
    assert_eq!(
        rest.post_json(&promote("prod"), &token, json!({"freight": freight}))
            .await,
        (
            400,
            err(&format!(
                "Freight \"{freight}\" is not available to Stage \"prod\""
            ))
        )
    );

    let (code, promo) = rest
        .post_json(&promote("dev"), &token, json!({"freightAlias": alias}))
        .await;
    assert_eq!(code, 201, "{promo}");
    assert_eq!(promo["spec"]["freight"], freight.as_str());
    assert_eq!(
        promo["metadata"]["annotations"]["kargo.akuity.io/create-actor"],
        "admin"
    );
    let name = promo["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("dev."), "{name}");
    wait_until(20, "the promotion to succeed", async || {
        let (_, p) = rest
            .get(&format!("/v1beta1/projects/p/promotions/{name}"), &token)
            .await;
        (p["status"]["phase"] == "Succeeded").then_some(())
    })
    .await;

    // By origin: admission picks the candidate.
    let (code, by_origin) = rest
        .post_json(&promote("dev"), &token, json!({"origin": "Warehouse/w"}))
        .await;
    assert_eq!(code, 201, "{by_origin}");
    assert_eq!(by_origin["spec"]["freight"], freight.as_str());
    assert_eq!(
        rest.post_json(&promote("dev"), &token, json!({"origin": "w"}))
            .await,
        (
            400,
            err("invalid origin \"w\": expected \"Warehouse/<name>\"")
        )
    );

    let (_, dev_promos) = rest
        .get("/v1beta1/projects/p/promotions?stage=dev", &token)
        .await;
    assert_eq!(dev_promos["items"].as_array().unwrap().len(), 2);
    let (_, prod_promos) = rest
        .get("/v1beta1/projects/p/promotions?stage=prod", &token)
        .await;
    assert_eq!(prod_promos["items"], json!([]));

    // Approval.
    let approve = format!("/v1beta1/projects/p/freight/{alias}/approve");
    assert_eq!(
        rest.post_json(&approve, &token, json!({})).await,
        (400, err("stage query parameter is required"))
    );
    assert_eq!(
        rest.post_json(&format!("{approve}?stage=prod"), &token, json!({}))
            .await,
        (200, Value::Null)
    );
    let (_, f) = rest
        .get(&format!("/v1beta1/projects/p/freight/{freight}"), &token)
        .await;
    assert!(
        f["status"]["approvedFor"]["prod"]["approvedAt"].is_string(),
        "{f}"
    );
    // Approved, prod may take it without passing dev's verification.
    assert_eq!(
        rest.post_json(&promote("prod"), &token, json!({"freight": freight}))
            .await
            .0,
        201
    );

    // Refresh.
    assert_eq!(
        rest.post_json(
            "/v1beta1/projects/p/warehouses/w/refresh",
            &token,
            json!({})
        )
        .await,
        (200, Value::Null)
    );
    let (_, w) = rest.get("/v1beta1/projects/p/warehouses/w", &token).await;
    assert!(
        w["metadata"]["annotations"]["kargo.akuity.io/refresh"].is_string(),
        "{w}"
    );

    // Deletion.
    let (code, _) = rest
        .send(
            "DELETE",
            "/v1beta1/projects/p/stages/prod",
            Some(&token),
            "application/json",
            "",
        )
        .await;
    assert_eq!(code, 204);
    let gone = wait_until(20, "stage prod to be gone", async || {
        let (code, _) = rest.get("/v1beta1/projects/p/stages/prod", &token).await;
        (code == 404).then_some(code)
    })
    .await;
    assert_eq!(gone, 404);

    // The ProjectConfig, read and deleted through `/config`.
    let config = "apiVersion: kargo.akuity.io/v1alpha1\nkind: ProjectConfig\nmetadata: {name: p, namespace: p}\nspec: {}\n";
    let (code, body) = rest.resources("POST", "", &token, config).await;
    assert_eq!(code, 201, "{body}");
    let (code, cfg) = rest.get("/v1beta1/projects/p/config", &token).await;
    assert_eq!((code, &cfg["kind"]), (200, &json!("ProjectConfig")));
    let (code, _) = rest
        .send("DELETE", "/v1beta1/projects/p/config", Some(&token), "", "")
        .await;
    assert_eq!(code, 204);
    wait_until(20, "the ProjectConfig to be gone", async || {
        let answer = rest.get("/v1beta1/projects/p/config", &token).await;
        (answer == (404, err("projectconfigs.kargo.akuity.io \"p\" not found"))).then_some(())
    })
    .await;

    // The Project itself.
    let (code, _) = rest
        .send("DELETE", "/v1beta1/projects/p", Some(&token), "", "")
        .await;
    assert_eq!(code, 204);
    wait_until(20, "the Project to be gone", async || {
        let (_, list) = rest.get("/v1beta1/projects", &token).await;
        (list["total"] == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn watches_stream_server_sent_events() {
    let sandbox = start(Options::default()).await;
    let rest = Rest::of(&sandbox);
    let token = rest.login(sandbox.admin_password()).await;
    let (freight, alias) = pipeline(&sandbox, &rest, &token).await;
    let (code, _) = rest
        .send(
            "GET",
            "/v1beta1/projects/p/stages/dev?watch=true",
            None,
            "",
            "",
        )
        .await;
    assert_eq!(code, 401);
    assert_eq!(
        rest.get("/v1beta1/projects/p/stages/nope?watch=true", &token)
            .await,
        (404, err("stages.kargo.akuity.io \"nope\" not found"))
    );

    let (code, content_type, mut prod_promotions) = rest
        .events(
            "/v1beta1/projects/p/promotions?watch=true&stage=prod",
            &token,
        )
        .await;
    assert_eq!((code, content_type.as_str()), (200, "text/event-stream"));
    let (_, promo) = rest
        .post_json(
            "/v1beta1/projects/p/stages/dev/promotions",
            &token,
            json!({"freightAlias": alias}),
        )
        .await;
    let name = promo["metadata"]["name"].as_str().unwrap().to_string();

    let (_, _, mut one) = rest
        .events(
            &format!("/v1beta1/projects/p/promotions/{name}?watch=true"),
            &token,
        )
        .await;
    let first = one.next().await;
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["metadata"]["name"], name.as_str());
    loop {
        let e = one.next().await;
        assert_eq!(e["type"], "MODIFIED", "{e}");
        assert_eq!(e["object"]["metadata"]["name"], name.as_str());
        if e["object"]["status"]["phase"] == "Succeeded" {
            break;
        }
    }

    // dev's Promotion never showed as ADDED on the prod-filtered stream; prod's does.
    wait_until(20, "the freight to be verified in dev", async || {
        let (_, f) = rest
            .get(&format!("/v1beta1/projects/p/freight/{freight}"), &token)
            .await;
        f["status"]["verifiedIn"].get("dev").map(|_| ())
    })
    .await;
    let (code, prod) = rest
        .post_json(
            "/v1beta1/projects/p/stages/prod/promotions",
            &token,
            json!({"freight": freight}),
        )
        .await;
    assert_eq!(code, 201, "{prod}");
    // As in Kargo, changes to Promotions the filter leaves out arrive as DELETED.
    let mut e = prod_promotions.next().await;
    while e["type"] == "DELETED" {
        assert_eq!(e["object"]["spec"]["stage"], "dev", "{e}");
        e = prod_promotions.next().await;
    }
    assert_eq!(e["type"], "ADDED");
    assert_eq!(e["object"]["spec"]["stage"], "prod");
    assert_eq!(e["object"]["metadata"]["name"], prod["metadata"]["name"]);
}

const ROLES: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: viewer, namespace: p}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: viewer, namespace: p}
rules:
- apiGroups: [kargo.akuity.io]
  resources: [stages, warehouses, freights, promotions]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: viewer, namespace: p}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: viewer}
subjects: [{kind: ServiceAccount, name: viewer, namespace: p}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: promoter, namespace: p}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: promoter, namespace: p}
rules:
- apiGroups: [kargo.akuity.io]
  resources: [stages, warehouses, freights, promotions]
  verbs: [get, list, watch]
- apiGroups: [kargo.akuity.io]
  resources: [stages]
  verbs: [promote]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: promoter, namespace: p}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: promoter}
subjects: [{kind: ServiceAccount, name: promoter, namespace: p}]
"#;

#[tokio::test]
async fn api_tokens_carry_their_kargo_roles_permissions_until_deleted() {
    let sandbox = start(Options::default()).await;
    let rest = Rest::of(&sandbox);
    let admin = rest.login(sandbox.admin_password()).await;
    let (_, alias) = pipeline(&sandbox, &rest, &admin).await;
    let (code, body) = rest.resources("POST", "", &admin, ROLES).await;
    assert_eq!(code, 201, "{body}");

    let tokens = |role: &str| format!("/v1beta1/projects/p/roles/{role}/api-tokens");
    assert_eq!(
        rest.post_json(&tokens("viewer"), &admin, json!({"name": ""}))
            .await,
        (400, err("name should not be empty"))
    );
    assert_eq!(
        rest.post_json(&tokens("nobody"), &admin, json!({"name": "t"}))
            .await,
        (
            404,
            err(
                "error getting ServiceAccount \"nobody\" in namespace \"p\": serviceaccounts \"nobody\" not found"
            )
        )
    );
    let mut issued = Vec::new();
    for role in ["viewer", "promoter"] {
        let (code, secret) = rest
            .post_json(
                &tokens(role),
                &admin,
                json!({"name": format!("{role}-token")}),
            )
            .await;
        assert_eq!(code, 201, "{secret}");
        assert_eq!(secret["type"], "kubernetes.io/service-account-token");
        assert_eq!(
            secret["metadata"]["labels"]["rbac.kargo.akuity.io/api-token"],
            "true"
        );
        assert_eq!(
            secret["metadata"]["annotations"]["kubernetes.io/service-account.name"],
            role
        );
        let token = String::from_utf8(
            STANDARD
                .decode(secret["data"]["token"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            claims(&token).1["sub"],
            format!("system:serviceaccount:p:{role}")
        );
        issued.push(token);
    }
    let (viewer, promoter) = (&issued[0], &issued[1]);

    // The viewer reads but may neither promote nor write.
    assert_eq!(rest.get("/v1beta1/projects/p/stages", viewer).await.0, 200);
    let promote = "/v1beta1/projects/p/stages/dev/promotions";
    assert_eq!(
        rest.post_json(promote, viewer, json!({"freightAlias": alias}))
            .await,
        (
            403,
            err("stages.kargo.akuity.io \"dev\" is forbidden: promote is not permitted")
        )
    );
    assert_eq!(
        rest.post_json(
            &format!("/v1beta1/projects/p/freight/{alias}/approve?stage=prod"),
            viewer,
            json!({})
        )
        .await,
        (
            403,
            err("stages.kargo.akuity.io \"prod\" is forbidden: promote is not permitted")
        )
    );
    let w9 = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {name: w9, namespace: p}\nspec:\n  subscriptions: [{image: {repoURL: ghcr.io/acme/x}}]\n";
    assert_eq!(
        rest.resources("POST", "", viewer, w9).await,
        (
            403,
            err("warehouses.kargo.akuity.io \"w9\" is forbidden: create is not permitted")
        )
    );
    assert_eq!(
        rest.get("/v1beta1/projects", viewer).await,
        (
            403,
            err("projects.kargo.akuity.io is forbidden: list is not permitted")
        )
    );

    // Granted Project creation, the viewer fills a Project it creates in the same request
    // on the API server's authority, but still may not write in `p`.
    let grant = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: project-creator}
rules: [{apiGroups: [kargo.akuity.io], resources: [projects], verbs: [get, create]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: viewer-creates-projects}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: project-creator}
subjects: [{kind: ServiceAccount, name: viewer, namespace: p}]
"#;
    assert_eq!(rest.resources("POST", "", &admin, grant).await.0, 201);
    let mixed = format!(
        "{w9}---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: wq, namespace: q}}\nspec:\n  subscriptions: [{{image: {{repoURL: ghcr.io/acme/q}}}}]\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata: {{name: q}}\n"
    );
    let (code, body) = rest.resources("POST", "", viewer, &mixed).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        body["results"][0]["createdResourceManifest"]["metadata"]["name"],
        "q"
    );
    assert_eq!(
        body["results"][1],
        err(
            "create resource: warehouses.kargo.akuity.io \"w9\" is forbidden: create is not permitted"
        )
    );
    assert_eq!(
        body["results"][2]["createdResourceManifest"]["metadata"]["name"],
        "wq"
    );
    assert_eq!(
        rest.get("/v1beta1/projects/q/warehouses/wq", &admin)
            .await
            .0,
        200
    );

    // The promoter promotes; the API server records an actor it cannot name.
    let (code, promo) = rest
        .post_json(promote, promoter, json!({"freightAlias": alias}))
        .await;
    assert_eq!(code, 201, "{promo}");
    assert_eq!(
        promo["metadata"]["annotations"]["kargo.akuity.io/create-actor"],
        "unknown actor"
    );

    // Deleting the token Secret revokes the token.
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: viewer-token, namespace: p}\n";
    assert_eq!(rest.resources("DELETE", "", &admin, secret).await.0, 200);
    assert_eq!(
        rest.get("/v1beta1/projects/p/stages", viewer).await,
        (401, err("invalid token"))
    );
    assert_eq!(
        rest.get("/v1beta1/projects/p/stages", promoter).await.0,
        200
    );
}

#[tokio::test]
async fn serve_takes_the_admin_password_and_token_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kargo-sandbox"))
            .args(["serve", "--kubeconfig"])
            .arg(&kubeconfig)
            .args(extra)
            .output()
            .unwrap()
    };
    for (args, want) in [
        (
            &["--admin-password", ""][..],
            "--admin-password must not be empty",
        ),
        (
            &["--admin-token-ttl", "0s"][..],
            "--admin-token-ttl must be positive",
        ),
        (
            &["--admin-token-ttl", "soon"][..],
            "--admin-token-ttl \"soon\"",
        ),
    ] {
        let out = run(args);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kargo-sandbox"))
        .args(["serve", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--admin-password", "pw", "--admin-token-ttl", "90s"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let doc: serde_yaml::Value = wait_until(20, "the kubeconfig", async || {
        let text = std::fs::read_to_string(&kubeconfig).ok()?;
        serde_yaml::from_str(&text).ok()
    })
    .await;
    let cluster = &doc["clusters"][0]["cluster"];
    let server = cluster["server"].as_str().unwrap();
    let ca = STANDARD
        .decode(cluster["certificate-authority-data"].as_str().unwrap())
        .unwrap();
    let rest = Rest::new(server, &String::from_utf8(ca).unwrap());
    let token = rest.login("pw").await;
    let (_, payload) = claims(&token);
    assert_eq!(
        payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap(),
        90
    );
    child.kill().await.unwrap();
}

/// A token for the Kargo role (ServiceAccount) `role` in Project `p`, issued by the admin.
async fn api_token(rest: &Rest, admin: &str, role: &str) -> String {
    let (code, secret) = rest
        .post_json(
            &format!("/v1beta1/projects/p/roles/{role}/api-tokens"),
            admin,
            json!({"name": format!("{role}-token")}),
        )
        .await;
    assert_eq!(code, 201, "{secret}");
    let token = STANDARD
        .decode(secret["data"]["token"].as_str().unwrap())
        .unwrap();
    String::from_utf8(token).unwrap()
}

/// A Kargo role that may do nothing at all.
const OUTSIDER: &str =
    "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: outsider, namespace: p}\n";

#[tokio::test]
async fn server_version_answers_kargos_version_info_to_any_signed_in_caller() {
    let sandbox = start(Options::default()).await;
    let rest = Rest::of(&sandbox);
    let path = "/v1beta1/system/server-version";
    // Kargo exempts only login and the public server config from authentication.
    let (code, body) = rest.send("GET", path, None, "application/json", "").await;
    assert_eq!((code, body), (401, err("no token provided")));
    assert_eq!(
        rest.get(path, "not-a-jwt").await,
        (401, err("invalid token"))
    );
    let admin = rest.login(sandbox.admin_password()).await;
    let (code, version) = rest.get(path, &admin).await;
    assert_eq!(code, 200, "{version}");
    assert_eq!(version["version"], "v1.11.2");
    assert_eq!(version["gitTreeDirty"], false);
    assert_eq!(version["compiler"], "gc");
    assert_eq!(version["platform"], "linux/amd64");
    assert!(version["buildDate"].as_str().unwrap().ends_with('Z'));
    assert_eq!(version["gitCommit"].as_str().unwrap().len(), 40);
    assert!(version["goVersion"].as_str().unwrap().starts_with("go1."));
    assert_eq!(version, kargo_sandbox::rest::version_info());

    // No permission is needed: a role that may do nothing reads it too.
    let project = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata: {name: p}\n";
    let (code, body) = rest
        .resources("POST", "", &admin, &format!("{project}---\n{OUTSIDER}"))
        .await;
    assert_eq!(code, 201, "{body}");
    let outsider = api_token(&rest, &admin, "outsider").await;
    assert_eq!(
        rest.get("/v1beta1/projects/p/stages", &outsider).await.0,
        403
    );
    assert_eq!(rest.get(path, &outsider).await, (200, version));
    let logged: Vec<(String, u16)> = sandbox
        .requests()
        .iter()
        .filter(|r| r.verb == "rest" && r.resource == path)
        .map(|r| (r.user.clone().unwrap_or_default(), r.code))
        .collect();
    assert_eq!(
        logged,
        vec![
            (String::new(), 401),
            (String::new(), 401),
            ("admin".to_string(), 200),
            ("system:serviceaccount:p:outsider".to_string(), 200),
        ]
    );
}

const TASKS: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: PromotionTask
metadata: {name: b-task, namespace: p}
spec:
  steps: [{uses: git-clone, as: clone}, {uses: git-push}]
---
apiVersion: kargo.akuity.io/v1alpha1
kind: PromotionTask
metadata: {name: a-task, namespace: p}
spec:
  vars: [{name: env}]
  steps: [{uses: git-clone, as: clone}]
---
apiVersion: kargo.akuity.io/v1alpha1
kind: ClusterPromotionTask
metadata: {name: shared-deploy}
spec:
  steps: [{uses: git-clone, as: clone}, {uses: git-push, as: push}]
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata: {name: p}
"#;

#[tokio::test]
async fn promotion_tasks_and_cluster_promotion_tasks_are_read_as_rbac_allows() {
    let sandbox = start(Options::default()).await;
    let rest = Rest::of(&sandbox);
    let admin = rest.login(sandbox.admin_password()).await;
    let (code, body) = rest
        .resources("POST", "", &admin, &format!("{TASKS}---\n{ROLES}"))
        .await;
    assert_eq!(code, 201, "{body}");
    assert!(
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.get("error").is_none()),
        "{body}"
    );
    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };

    // A Project's PromotionTasks, by name.
    let (code, tasks) = rest
        .get("/v1beta1/projects/p/promotion-tasks", &admin)
        .await;
    assert_eq!(code, 200, "{tasks}");
    assert_eq!(tasks["kind"], "PromotionTaskList");
    assert_eq!(names(&tasks), ["a-task", "b-task"]);
    let (code, task) = rest
        .get("/v1beta1/projects/p/promotion-tasks/a-task", &admin)
        .await;
    assert_eq!(code, 200, "{task}");
    assert_eq!(task["kind"], "PromotionTask");
    assert_eq!(task["spec"]["vars"][0]["name"], "env");
    assert_eq!(
        rest.get("/v1beta1/projects/p/promotion-tasks/nope", &admin)
            .await,
        (
            404,
            err("promotiontasks.kargo.akuity.io \"nope\" not found")
        )
    );
    assert_eq!(
        rest.get("/v1beta1/projects/q/promotion-tasks", &admin)
            .await,
        (404, err("projects.kargo.akuity.io \"q\" not found"))
    );
    // Kargo's handlers read no `watch` parameter on these routes: the answer is the list.
    let (code, watched) = rest
        .get("/v1beta1/projects/p/promotion-tasks?watch=true", &admin)
        .await;
    assert_eq!((code, names(&watched)), (200, names(&tasks)));

    // ClusterPromotionTasks.
    let (code, shared) = rest
        .get("/v1beta1/shared/cluster-promotion-tasks", &admin)
        .await;
    assert_eq!(code, 200, "{shared}");
    assert_eq!(shared["kind"], "ClusterPromotionTaskList");
    assert_eq!(names(&shared), ["shared-deploy"]);
    let (code, one) = rest
        .get(
            "/v1beta1/shared/cluster-promotion-tasks/shared-deploy",
            &admin,
        )
        .await;
    assert_eq!(code, 200, "{one}");
    assert_eq!(one["spec"]["steps"][1]["as"], "push");
    assert_eq!(
        rest.get("/v1beta1/shared/cluster-promotion-tasks/nope", &admin)
            .await,
        (
            404,
            err("clusterpromotiontasks.kargo.akuity.io \"nope\" not found")
        )
    );

    // A role without them is refused, as for any read.
    let viewer = api_token(&rest, &admin, "viewer").await;
    assert_eq!(
        rest.get("/v1beta1/projects/p/promotion-tasks", &viewer)
            .await,
        (
            403,
            err("promotiontasks.kargo.akuity.io is forbidden: list is not permitted")
        )
    );
    assert_eq!(
        rest.get("/v1beta1/projects/p/promotion-tasks/a-task", &viewer)
            .await,
        (
            403,
            err("promotiontasks.kargo.akuity.io \"a-task\" is forbidden: get is not permitted")
        )
    );
    assert_eq!(
        rest.get("/v1beta1/shared/cluster-promotion-tasks", &viewer)
            .await,
        (
            403,
            err("clusterpromotiontasks.kargo.akuity.io is forbidden: list is not permitted")
        )
    );
    assert_eq!(
        rest.get(
            "/v1beta1/shared/cluster-promotion-tasks/shared-deploy",
            &viewer
        )
        .await,
        (
            403,
            err(
                "clusterpromotiontasks.kargo.akuity.io \"shared-deploy\" is forbidden: get is not permitted"
            )
        )
    );
    // Granted, it reads them.
    let grant = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: task-reader, namespace: p}
rules: [{apiGroups: [kargo.akuity.io], resources: [promotiontasks], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: viewer-reads-tasks, namespace: p}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: task-reader}
subjects: [{kind: ServiceAccount, name: viewer, namespace: p}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: shared-task-reader}
rules: [{apiGroups: [kargo.akuity.io], resources: [clusterpromotiontasks], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: viewer-reads-shared-tasks}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: shared-task-reader}
subjects: [{kind: ServiceAccount, name: viewer, namespace: p}]
"#;
    let (code, body) = rest.resources("POST", "", &admin, grant).await;
    assert_eq!(code, 201, "{body}");
    let (code, list) = rest
        .get("/v1beta1/projects/p/promotion-tasks", &viewer)
        .await;
    assert_eq!((code, names(&list)), (200, names(&tasks)));
    assert_eq!(
        rest.get("/v1beta1/projects/p/promotion-tasks/b-task", &viewer)
            .await
            .0,
        200
    );
    let (code, list) = rest
        .get("/v1beta1/shared/cluster-promotion-tasks", &viewer)
        .await;
    assert_eq!((code, names(&list)), (200, names(&shared)));

    // The lists follow the store.
    let b = "apiVersion: kargo.akuity.io/v1alpha1\nkind: PromotionTask\nmetadata: {name: b-task, namespace: p}\n";
    assert_eq!(rest.resources("DELETE", "", &admin, b).await.0, 200);
    let (_, after) = rest
        .get("/v1beta1/projects/p/promotion-tasks", &viewer)
        .await;
    assert_eq!(names(&after), ["a-task"]);
}

/// The abort request a Promotion carries, parsed.
fn abort_request(promo: &Value) -> Value {
    let raw = promo["metadata"]["annotations"]["kargo.akuity.io/abort"]
        .as_str()
        .unwrap_or_else(|| panic!("no abort request: {promo}"));
    serde_json::from_str(raw).unwrap()
}

/// Waits until the Promotion `name` in `p` reaches `phase`; answers it.
async fn promotion_in_phase(rest: &Rest, token: &str, name: &str, phase: &str) -> Value {
    wait_until(20, &format!("promotion {name} to be {phase}"), async || {
        let (_, p) = rest
            .get(&format!("/v1beta1/projects/p/promotions/{name}"), token)
            .await;
        (p["status"]["phase"] == phase).then_some(p)
    })
    .await
}

/// The status of each step the Promotion has run.
fn step_statuses(p: &Value) -> Vec<String> {
    p["status"]["stepExecutionMetadata"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| m["status"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the Promotion `name` in `p` is held at its second step (`push`).
async fn held_at_push(rest: &Rest, token: &str, name: &str) -> Value {
    wait_until(
        20,
        &format!("promotion {name} to be held at push"),
        async || {
            let (_, p) = rest
                .get(&format!("/v1beta1/projects/p/promotions/{name}"), token)
                .await;
            (p["status"]["phase"] == "Running" && step_statuses(&p) == ["Succeeded", "Running"])
                .then_some(p)
        },
    )
    .await
}

#[tokio::test]
async fn abort_terminates_a_promotion_as_the_abort_annotation_does() {
    let sandbox = start(Options::default()).await;
    let rest = Rest::of(&sandbox);
    let admin = rest.login(sandbox.admin_password()).await;
    let (_, alias) = pipeline(&sandbox, &rest, &admin).await;
    let (code, body) = rest
        .resources("POST", "", &admin, &format!("{ROLES}---\n{OUTSIDER}"))
        .await;
    assert_eq!(code, 201, "{body}");
    let promoter = api_token(&rest, &admin, "promoter").await;
    let outsider = api_token(&rest, &admin, "outsider").await;
    sandbox
        .control(
            "hold-promotion",
            &json!({"project": "p", "stage": "dev", "step": "push"}),
        )
        .unwrap();
    let (code, promo) = rest
        .post_json(
            "/v1beta1/projects/p/stages/dev/promotions",
            &admin,
            json!({"freightAlias": alias}),
        )
        .await;
    assert_eq!(code, 201, "{promo}");
    let name = promo["metadata"]["name"].as_str().unwrap().to_string();
    let abort = format!("/v1beta1/projects/p/promotions/{name}/abort");
    let running = held_at_push(&rest, &admin, &name).await;

    // Kargo asks `get`, then `patch`, on the Promotion; `promote` on the Stage is not enough.
    assert_eq!(
        rest.post_json(&abort, &outsider, json!({})).await,
        (
            403,
            err(&format!(
                "error getting Promotion \"{name}\" in namespace \"p\": promotions.kargo.akuity.io \"{name}\" is forbidden: get is not permitted"
            ))
        )
    );
    assert_eq!(
        rest.post_json(&abort, &promoter, json!({})).await,
        (
            403,
            err(&format!(
                "patch annotation: promotions.kargo.akuity.io \"{name}\" is forbidden: patch is not permitted"
            ))
        )
    );
    let (_, still) = rest
        .get(&format!("/v1beta1/projects/p/promotions/{name}"), &admin)
        .await;
    assert_eq!(
        still["metadata"]["resourceVersion"],
        running["metadata"]["resourceVersion"]
    );
    assert!(
        still["metadata"]["annotations"]
            .get("kargo.akuity.io/abort")
            .is_none(),
        "{still}"
    );

    // The admin aborts: the request names the admin, and the controller terminates.
    assert_eq!(
        rest.post_json(&abort, &admin, json!({})).await,
        (200, Value::Null)
    );
    let aborted = promotion_in_phase(&rest, &admin, &name, "Aborted").await;
    assert_eq!(
        abort_request(&aborted),
        json!({"action": "terminate", "actor": "admin", "controlPlane": true})
    );
    assert_eq!(
        aborted["status"]["message"],
        "Promotion terminated by admin"
    );
    assert_eq!(step_statuses(&aborted), ["Succeeded", "Aborted"]);
    assert!(aborted["status"]["finishedAt"].is_string(), "{aborted}");

    // A Promotion already finished is left alone; a missing one is an error Kargo gives
    // no status to.
    assert_eq!(
        rest.post_json(&abort, &admin, json!({})).await,
        (200, Value::Null)
    );
    let (_, again) = rest
        .get(&format!("/v1beta1/projects/p/promotions/{name}"), &admin)
        .await;
    assert_eq!(again, aborted);
    assert_eq!(
        rest.post_json(
            "/v1beta1/projects/p/promotions/dev.nope/abort",
            &admin,
            json!({})
        )
        .await,
        (500, err("internal server error"))
    );
    assert_eq!(
        rest.post_json(
            &format!("/v1beta1/projects/q/promotions/{name}/abort"),
            &admin,
            json!({})
        )
        .await,
        (404, err("projects.kargo.akuity.io \"q\" not found"))
    );

    // The same request set through the Kubernetes API ends the same way, naming the
    // Kubernetes user.
    let (code, second) = rest
        .post_json(
            "/v1beta1/projects/p/stages/dev/promotions",
            &admin,
            json!({"freightAlias": alias}),
        )
        .await;
    assert_eq!(code, 201, "{second}");
    let second = second["metadata"]["name"].as_str().unwrap().to_string();
    held_at_push(&rest, &admin, &second).await;
    let client = core_support::client(&sandbox).await;
    core_support::kargo_api(&client, "p", "Promotion", "promotions")
        .patch(
            &second,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                json!({"metadata": {"annotations": {"kargo.akuity.io/abort": "terminate"}}}),
            ),
        )
        .await
        .unwrap();
    let by_kube = promotion_in_phase(&rest, &admin, &second, "Aborted").await;
    let request = abort_request(&by_kube);
    let actor = request["actor"].as_str().unwrap();
    assert!(actor.starts_with("kubernetes:"), "{request}");
    assert_eq!(request, json!({"action": "terminate", "actor": actor}));
    assert_eq!(
        by_kube["status"]["message"],
        format!("Promotion terminated by {actor}")
    );
    assert_eq!(step_statuses(&by_kube), step_statuses(&aborted));
}

#[tokio::test]
async fn without_kargo_installed_every_rest_route_answers_503() {
    let sandbox = start(Options::default().without_kargo()).await;
    let rest = Rest::of(&sandbox);
    let unavailable = (
        503,
        "text/plain; charset=utf-8".to_string(),
        Bytes::from("Kargo API server unavailable"),
    );
    let password = sandbox.admin_password().to_string();
    let probes = |token: Option<String>| {
        let password = password.clone();
        let rest = &rest;
        async move {
            let mut answers = vec![
                rest.send_raw(
                    "POST",
                    "/v1beta1/login",
                    Some(&password),
                    "application/json",
                    "",
                )
                .await,
                rest.send_raw("GET", "/v1beta1/projects", None, "", "")
                    .await,
                rest.send_raw("GET", "/v1beta1/nothing-here", None, "", "")
                    .await,
            ];
            if let Some(t) = token {
                answers.push(
                    rest.send_raw("GET", "/v1beta1/projects", Some(&t), "", "")
                        .await,
                );
                answers.push(
                    rest.send_raw("GET", "/v1beta1/system/server-version", Some(&t), "", "")
                        .await,
                );
            }
            answers
        }
    };
    for answer in probes(None).await {
        assert_eq!(answer, unavailable);
    }
    // The Kubernetes API on the same port answers.
    let (code, _) = rest
        .send(
            "GET",
            "/api/v1/namespaces",
            Some(sandbox.token()),
            "application/json",
            "",
        )
        .await;
    assert_eq!(code, 200);
    let logged: Vec<(String, u16)> = sandbox
        .requests()
        .iter()
        .filter(|r| r.verb == "rest")
        .map(|r| (r.resource.clone(), r.code))
        .collect();
    assert_eq!(
        logged,
        vec![
            ("/v1beta1/login".to_string(), 503),
            ("/v1beta1/projects".to_string(), 503),
            (String::new(), 503),
        ]
    );

    sandbox.install_kargo();
    let token = rest.login(&password).await;
    assert_eq!(
        rest.get("/v1beta1/projects", &token).await,
        (200, json!({"items": [], "total": 0}))
    );

    // Uninstalled, the API server is gone again, token or not.
    sandbox.uninstall_kargo();
    for answer in probes(Some(token.clone())).await {
        assert_eq!(answer, unavailable);
    }

    // Reinstalled, the token signed before still works.
    sandbox.install_kargo();
    assert_eq!(rest.get("/v1beta1/projects", &token).await.0, 200);
    assert_eq!(
        rest.get("/v1beta1/system/server-version", &token).await.1["version"],
        "v1.11.2"
    );
}

/// Every route the sandbox serves exists in Kargo v1.11.2's swagger with that method and the
/// same path parameters.
#[test]
fn every_served_route_is_in_kargos_swagger() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/kargo/v1.11.2/swagger.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        if std::env::var_os("CI").is_some() {
            panic!("{} is required on CI", path.display());
        }
        println!("SKIPPED: {} is not present", path.display());
        return;
    };
    let swagger: Value = serde_json::from_str(&text).unwrap();
    let mut missing = Vec::new();
    for (method, template) in kargo_sandbox::rest::ROUTES {
        let op = &swagger["paths"][*template][method.to_lowercase()];
        if !op.is_object() {
            missing.push(format!("{method} {template}"));
            continue;
        }
        let declared: Vec<&str> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let used: Vec<&str> = template
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(declared, used, "{method} {template}");
    }
    assert!(missing.is_empty(), "not in swagger: {missing:?}");
    for (method, template, names) in kargo_sandbox::rest::QUERY_PARAMETERS {
        let op = &swagger["paths"][*template][method.to_lowercase()];
        let declared: Vec<&str> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        for name in *names {
            assert!(
                declared.contains(name),
                "{method} {template} ?{name}: {declared:?}"
            );
        }
    }
    for template in kargo_sandbox::rest::WATCH_ROUTES {
        assert!(
            kargo_sandbox::rest::ROUTES.contains(&("GET", template)),
            "{template}"
        );
        assert!(swagger["paths"][*template]["get"].is_object(), "{template}");
    }
    // The version answer has exactly the fields of Kargo's VersionInfo.
    let mut fields: Vec<&String> = swagger["definitions"]["VersionInfo"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    let version = kargo_sandbox::rest::version_info();
    let mut answered: Vec<&String> = version.as_object().unwrap().keys().collect();
    fields.sort();
    answered.sort();
    assert_eq!(answered, fields);
    assert!(kargo_sandbox::rest::ROUTES.len() >= 26);
}
