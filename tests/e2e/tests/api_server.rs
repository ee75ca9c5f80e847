//! Working through Kargo's API server (the `api_server` block) end to end, where it differs
//! from the Kubernetes API: tokens it refuses or revoked, a wrong admin password, admin
//! tokens that expire during an apply, Kargo roles without `promote`, a server that cannot be
//! reached or is not trusted, a Kargo not installed, the settings refused at validate and
//! plan, `insecure_skip_tls_verify` and the environment fallbacks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kargo_e2e::pipeline::{Hcl, Pipeline, Sources, WAIT, applied_over, publish};
use kargo_e2e::{At, Env, Terraform, Transport};
use kargo_sandbox::{HttpFault, Options, RequestRecord, Sandbox};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value as Json, json};

const REQUIRED_PROVIDERS: &str =
    "terraform {\n  required_providers {\n    kargo = { source = \"dokaseca/kargo\" }\n  }\n}\n\n";

/// A provider block with the settings `top` and an `api_server` block holding `inner`.
fn provider(top: &str, inner: &str) -> String {
    format!(
        "{REQUIRED_PROVIDERS}provider \"kargo\" {{\n{top}\n  api_server {{\n{inner}\n  }}\n}}\n"
    )
}

/// The `api_server` settings that reach `env`'s sandbox: its URL and CA, with `auth`.
fn reach(env: &Env, auth: &str) -> String {
    format!(
        "    url            = \"{}\"\n    {auth}\n{}",
        env.sandbox.server_url(),
        ca(env)
    )
}

/// `ca_certificate`, trusting the sandbox's CA.
fn ca(env: &Env) -> String {
    format!(
        "    ca_certificate = <<-PEM\n{}\nPEM\n",
        env.sandbox.ca_pem().trim_end()
    )
}

fn project(name: &str) -> String {
    format!("resource \"kargo_project\" \"{name}\" {{\n  name = \"{name}\"\n}}\n")
}

/// A sandbox started with `options`, reached through Kargo's API server.
fn env_with(options: Options) -> Env {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    Env {
        sandbox: rt.block_on(Sandbox::start(options)).unwrap(),
        tf: Terraform::new(),
        transport: Transport::ApiServer,
    }
}

/// The REST requests logged since the log was last reset, as `METHOD path code`.
fn rest_log(env: &Env) -> Vec<String> {
    env.sandbox
        .requests()
        .iter()
        .filter(|r| r.verb == "rest")
        .map(|r| format!("{} {} {}", r.method, r.path, r.code))
        .collect()
}

fn logins(requests: &[RequestRecord]) -> usize {
    requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1beta1/login")
        .count()
}

/// One request to the sandbox's REST API, as a script calling Kargo's API would send it:
/// the status and the JSON body.
fn call(env: &Env, method: &str, path: &str, bearer: &str, body: &Json) -> (u16, Json) {
    let authority = env
        .sandbox
        .server_url()
        .strip_prefix("https://")
        .unwrap()
        .to_string();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(env.sandbox.ca_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &authority)
            .header(hyper::header::AUTHORIZATION, format!("Bearer {bearer}"))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let code = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Json::Null);
        (code, value)
    })
}

/// A token the sandbox's API server did not sign: the shape of its admin tokens, with a
/// signature of another key.
fn forged_jwt() -> String {
    let part = |v: &Json| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        part(&json!({"alg": "HS256", "typ": "JWT"})),
        part(&json!({"iss": "kargo-sandbox-api", "sub": "admin", "exp": 4_000_000_000u64})),
        URL_SAFE_NO_PAD.encode([7u8; 32])
    )
}

/// How every token the sandbox's API server signs begins: its JWT header,
/// `{"alg":"HS256","typ":"JWT"}`, base64url-encoded.
const SANDBOX_JWT_HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// Every place a secret could leak to: the output of a run with `TF_LOG=TRACE`, and the
/// state file.
#[track_caller]
fn assert_never_shown(env: &Env, out: &kargo_e2e::Output, secret: &str) {
    assert!(
        !out.all().contains(secret),
        "the token was shown:\n{}",
        out.all()
    );
    let state = std::fs::read_to_string(env.tf.path().join("terraform.tfstate")).unwrap();
    assert!(!state.contains(secret), "the token is in the state");
}

#[test]
fn a_token_the_api_server_did_not_sign_is_refused_by_name_and_never_shown() {
    let mut env = Env::over(Transport::ApiServer);
    env.config(&project("kept"));
    env.tf.apply().ok();
    env.tf.assert_no_changes();

    for token in [forged_jwt(), "garbage-token-0123456789".to_string()] {
        env.sandbox.reset_requests();
        let config = format!(
            "{}\n{}{}",
            provider("", &reach(&env, &format!("token          = \"{token}\""))),
            project("kept"),
            project("added")
        );
        env.tf.write_main(&config);

        // The refresh of what exists is refused: an error, the state kept as it was.
        let out = env.tf.run(&["plan"]).failed();
        let url = env.sandbox.server_url();
        out.assert_error(
            "kargo_project.kept",
            &[
                &format!(
                    "Kargo's API server at {url} rejected the provider's credentials (401 \
                     Unauthorized: invalid token)"
                ),
                "Check `api_server.token` (or `KARGO_API_TOKEN`)",
            ],
        );
        assert!(!out.all().contains(&token), "{}", out.all());

        // With everything logged, the token appears nowhere either.
        env.tf.env("TF_LOG", "TRACE");
        let traced = env.tf.apply().failed();
        env.tf.env("TF_LOG", "");
        assert!(
            traced.stderr.contains("Kargo API server request"),
            "TF_LOG=TRACE logged the provider's requests:\n{}",
            traced.stderr
        );
        assert!(
            traced
                .flat()
                .contains("rejected the provider's credentials (401 Unauthorized: invalid token)"),
            "{}",
            traced.flat()
        );
        assert_never_shown(&env, &traced, &token);
        assert!(env.get("projects", None, "added").is_none());
        assert_eq!(
            env.tf.state_list(),
            vec!["kargo_project.kept"],
            "the state is kept as it was"
        );

        // A token is used as it is: no login, every request refused.
        let requests = env.sandbox.requests();
        assert_eq!(logins(&requests), 0, "{:?}", rest_log(&env));
        assert!(
            !requests.is_empty() && requests.iter().all(|r| r.code == 401),
            "{:?}",
            rest_log(&env)
        );
    }
}

#[test]
fn a_wrong_admin_password_is_refused_at_login_and_never_shown() {
    let env = Env::over(Transport::ApiServer);
    let wrong = "not-the-admin-password-4711";
    env.tf.write_main(&format!(
        "{}\n{}",
        provider("", &reach(&env, &format!("admin_password = \"{wrong}\""))),
        project("p")
    ));
    env.tf.run(&["plan"]).ok();
    let out = env.tf.apply().failed();
    out.assert_error(
        "kargo_project.p",
        &[
            &format!(
                "Kargo's API server at {} rejected the provider's credentials",
                env.sandbox.server_url()
            ),
            "the admin login was refused: invalid password",
            "a refusal means the password is wrong or the admin account is disabled",
        ],
    );
    assert!(!out.all().contains(wrong), "{}", out.all());
    assert!(env.get("projects", None, "p").is_none());
    assert!(env.tf.state_list().is_empty());
    let log = rest_log(&env);
    assert!(
        !log.is_empty() && log.iter().all(|l| l == "POST /v1beta1/login 403"),
        "nothing but refused logins: {log:?}"
    );
}

#[test]
fn an_admin_token_that_expires_during_an_apply_is_renewed_once_and_the_apply_succeeds() {
    let env = env_with(Options::default().admin_token_ttl(Duration::from_secs(60)));
    env.config(&project("renewed"));
    env.tf.run(&["plan", "-out=tfplan"]).ok();
    env.sandbox.reset_requests();
    // The create is held long enough for the sandbox clock to move past the admin token's
    // expiry once the apply has logged in and read that the project is missing.
    env.sandbox
        .inject_fault(
            HttpFault::delay(Duration::from_secs(10))
                .verb("rest")
                .resource("/v1beta1/resources")
                .times(1),
        )
        .unwrap();
    let out = std::thread::scope(|s| {
        let apply = s.spawn(|| env.tf.run(&["apply", "tfplan"]));
        env.eventually("the apply to read the missing project", 3 * WAIT, |e| {
            e.sandbox
                .requests()
                .iter()
                .any(|r| r.path == "/v1beta1/projects/renewed" && r.code == 404)
        });
        env.sandbox.advance_clock(Duration::from_secs(61));
        apply.join().unwrap()
    });
    out.ok();
    let log = rest_log(&env);
    let requests = env.sandbox.requests();
    assert_eq!(
        logins(&requests),
        2,
        "one login, one renewal after the 401: {log:?}"
    );
    let create_refused = log
        .iter()
        .position(|l| l == "POST /v1beta1/resources 401")
        .unwrap_or_else(|| panic!("the held create was refused with the expired token: {log:?}"));
    assert_eq!(
        log.get(create_refused + 1).map(String::as_str),
        Some("POST /v1beta1/login 200"),
        "{log:?}"
    );
    assert_eq!(
        log.get(create_refused + 2).map(String::as_str),
        Some("POST /v1beta1/resources 201"),
        "sent again with the new token: {log:?}"
    );
    assert_eq!(
        log.iter().filter(|l| l.ends_with(" 401")).count(),
        1,
        "{log:?}"
    );
    assert!(env.get("projects", None, "renewed").is_some());
    assert_eq!(env.tf.state_list(), vec!["kargo_project.renewed"]);
    env.assert_went_through_transport();
    env.tf.assert_no_changes();
}

#[test]
fn an_admin_token_too_close_to_its_expiry_is_renewed_before_it_is_sent() {
    // Tokens that live 20 s are always within the 30 s the provider renews before expiry.
    let env = env_with(Options::default().admin_token_ttl(Duration::from_secs(20)));
    env.config(&project("short-lived"));
    env.tf.run(&["plan", "-out=tfplan"]).ok();
    env.sandbox.reset_requests();
    env.tf.run(&["apply", "tfplan"]).ok();
    let log = rest_log(&env);
    assert!(
        log.iter().all(|l| !l.ends_with(" 401")),
        "no request left with an expired token: {log:?}"
    );
    let requests: Vec<RequestRecord> = env
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| r.verb == "rest")
        .collect();
    let others = requests.len() - logins(&requests);
    assert!(others >= 2, "{log:?}");
    assert_eq!(
        logins(&requests),
        others,
        "a login before each request: {log:?}"
    );
    for pair in requests.chunks(2) {
        assert_eq!(pair[0].path, "/v1beta1/login", "{log:?}");
        assert_eq!(pair[0].code, 200, "{log:?}");
        assert_ne!(pair[1].path, "/v1beta1/login", "{log:?}");
    }
    assert!(env.get("projects", None, "short-lived").is_some());
    env.tf.assert_no_changes();
}

/// A project without auto-promotion, an image warehouse and `dev` taking its freight.
static PIPELINE: Hcl = Hcl::new(|| Pipeline::new().stage("dev", Sources::direct()).hcl());

/// The verbs of a Kargo role that manages the pipeline.
const MANAGE: [&str; 7] = [
    "get", "list", "watch", "create", "update", "patch", "delete",
];

/// Creates the Kargo role `role` in project `shop` as Kargo does (a ServiceAccount bound to
/// a Role of the same name), allowed to manage the pipeline and, when `promote`, to promote;
/// then issues an API token for it through Kargo's API route, as the admin. Returns the
/// token.
fn kargo_role_token(env: &Env, role: &str, promote: bool) -> String {
    let managed = json!({"rbac.kargo.akuity.io/managed": "true"});
    let mut rules = vec![json!({
        "apiGroups": ["kargo.akuity.io"],
        "resources": ["stages", "warehouses", "freights", "promotions", "projectconfigs"],
        "verbs": MANAGE,
    })];
    if promote {
        rules.push(json!({
            "apiGroups": ["kargo.akuity.io"], "resources": ["stages"], "verbs": ["promote"],
        }));
    }
    env.sandbox.with_txn(|txn| {
        txn.create(json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": role, "namespace": "shop", "annotations": managed}}))
            .unwrap();
        txn.create(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": role, "namespace": "shop", "annotations": managed},
            "rules": rules}),
        )
        .unwrap();
        txn.create(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": role, "namespace": "shop", "annotations": managed},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": role, "namespace": "shop"}]}),
        )
        .unwrap();
    });
    let (code, login) = call(
        env,
        "POST",
        "/v1beta1/login",
        env.sandbox.admin_password(),
        &Json::Null,
    );
    assert_eq!(code, 200, "{login}");
    let admin = login["idToken"].as_str().unwrap();
    let (code, secret) = call(
        env,
        "POST",
        &format!("/v1beta1/projects/shop/roles/{role}/api-tokens"),
        admin,
        &json!({"name": format!("{role}-token")}),
    );
    assert_eq!(code, 201, "{secret}");
    let token = STANDARD
        .decode(secret["data"]["token"].as_str().unwrap())
        .unwrap();
    String::from_utf8(token).unwrap()
}

fn promotions(env: &Env) -> Vec<Json> {
    env.sandbox
        .with_txn(|txn| txn.list("kargo.akuity.io", "promotions", Some("shop")))
}

#[test]
fn a_kargo_role_without_promote_is_told_what_to_grant_and_creates_nothing() {
    let env = applied_over(&PIPELINE, Transport::ApiServer);
    env.tf.assert_no_changes();
    let (freight, _) = publish(&env, "1.0.0");
    let deployer = kargo_role_token(&env, "deployer", false);
    let promoter = kargo_role_token(&env, "promoter", true);

    let tf = Terraform::new();
    let config = |token: &str| {
        format!(
            "{}\nresource \"kargo_promotion\" \"dev\" {{\n  project = \"shop\"\n  stage   = \"dev\"\n  freight = \"{freight}\"\n}}\n",
            provider("", &reach(&env, &format!("token          = \"{token}\"")))
        )
    };
    tf.write_main(&config(&deployer));
    env.sandbox.reset_requests();
    let out = tf.run(&["apply", "-auto-approve", "-json"]).failed();
    let found = out.json_diagnostics_at();
    let (refusal, at) = found
        .iter()
        .find(|(d, _)| d.summary == "Not permitted to promote")
        .unwrap_or_else(|| panic!("{found:?}"));
    assert_eq!(refusal.severity, "error");
    assert_eq!(refusal.address, "kargo_promotion.dev");
    for text in [
        "may not promote into stage \"dev\"",
        "the custom `promote` verb on `stages`",
        "`stages/dev` in namespace \"shop\"",
        "stages.kargo.akuity.io \"dev\" is forbidden: promote is not permitted",
        "`kargo grant --project=shop --role=<role> --verb=promote --resource-type=stages \
         --resource-name=dev` grants it",
    ] {
        assert!(
            refusal.detail.contains(text),
            "{text:?} in {}",
            refusal.detail
        );
    }
    assert_eq!(
        *at,
        At::nth(tf.path(), "main.tf", "\"dev\"", 2),
        "on `stage`"
    );
    assert!(!out.all().contains(&deployer));
    assert!(promotions(&env).is_empty(), "no Promotion was created");
    assert!(tf.state_list().is_empty(), "nothing recorded");
    let refused: Vec<RequestRecord> = env
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1beta1/projects/shop/stages/dev/promotions")
        .collect();
    assert_eq!(refused.len(), 1, "{:?}", rest_log(&env));
    assert_eq!(refused[0].code, 403);
    assert_eq!(
        refused[0].user.as_deref(),
        Some("system:serviceaccount:shop:deployer")
    );

    tf.write_main(&config(&promoter));
    tf.apply().ok();
    let made = promotions(&env);
    assert_eq!(made.len(), 1, "{made:?}");
    let name = made[0]["metadata"]["name"].as_str().unwrap();
    assert_eq!(made[0]["spec"]["freight"], freight.as_str());
    assert_eq!(
        tf.resource("kargo_promotion.dev")["promotion_name"],
        name,
        "the state records the Promotion made"
    );
    assert!(
        env.sandbox.requests().iter().any(|r| {
            r.path == "/v1beta1/projects/shop/stages/dev/promotions"
                && r.code == 201
                && r.user.as_deref() == Some("system:serviceaccount:shop:promoter")
        }),
        "{:?}",
        rest_log(&env)
    );
    tf.assert_no_changes();

    // Deleting the token's Secret revokes it, as in Kargo: the next refresh is refused.
    env.sandbox.with_txn(|txn| {
        txn.delete("", "secrets", Some("shop"), "promoter-token")
            .unwrap()
    });
    let out = tf.run(&["plan"]).failed();
    out.assert_error(
        "kargo_promotion.dev",
        &[
            "rejected the provider's credentials (401 Unauthorized: invalid token)",
            "a Kargo API token stops working when its Secret is deleted",
        ],
    );
    assert!(!out.all().contains(&promoter));
    assert_eq!(tf.state_list(), vec!["kargo_promotion.dev"]);
}

#[test]
fn an_api_server_that_cannot_be_reached_is_named_with_the_setting_to_check() {
    let env = Env::over(Transport::ApiServer);
    env.config(&project("kept"));
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    let closed = "https://127.0.0.1:1";
    let inner = format!(
        "    url            = \"{closed}\"\n    admin_password = \"{}\"\n{}",
        env.sandbox.admin_password(),
        ca(&env)
    );
    let unreachable = format!("could not reach Kargo's API server at {closed}");
    let advice = "Check the provider's `api_server.url` (or `KARGO_API_URL`), the network path \
                  and the TLS settings (`api_server.ca_certificate`).";

    // What exists is not refreshed: a warning, the state kept.
    env.tf
        .write_main(&format!("{}\n{}", provider("", &inner), project("kept")));
    let out = env.tf.run(&["plan", "-json"]).ok();
    let warnings: Vec<_> = out
        .json_diagnostics()
        .into_iter()
        .filter(|d| d.severity == "warning")
        .collect();
    assert!(
        warnings.iter().any(|d| d.address == "kargo_project.kept"
            && d.detail.contains(&unreachable)
            && d.detail.contains(advice)),
        "{warnings:?}"
    );
    assert_eq!(env.tf.state_list(), vec!["kargo_project.kept"]);

    // What is to be created cannot be: an error.
    env.tf.write_main(&format!(
        "{}\n{}{}",
        provider("", &inner),
        project("kept"),
        project("added")
    ));
    let out = env.tf.apply().failed();
    out.assert_error("kargo_project.added", &[&unreachable, advice]);
    assert!(env.get("projects", None, "added").is_none());
    assert_eq!(env.tf.state_list(), vec!["kargo_project.kept"]);
}

#[test]
fn without_kargo_an_apply_waits_for_its_api_server_only_as_long_as_api_wait_timeout() {
    let env = Env::without_kargo_over(Transport::ApiServer);
    env.tf.write_main(&format!(
        "{}\n{}",
        provider(
            "  api_wait_timeout = \"2s\"",
            &reach(
                &env,
                &format!("admin_password = \"{}\"", env.sandbox.admin_password())
            )
        ),
        project("later")
    ));
    let started = Instant::now();
    let out = env.tf.apply().failed();
    let elapsed = started.elapsed();
    out.assert_error(
        "kargo_project.later",
        &[
            &format!(
                "timed out waiting for the Kargo API (kargo.akuity.io/v1alpha1) to be served by {}",
                env.sandbox.server_url()
            ),
            "Kargo API server unavailable",
        ],
    );
    assert!(
        elapsed < Duration::from_secs(60),
        "the wait was bounded by api_wait_timeout, took {elapsed:?}"
    );
    let log = rest_log(&env);
    assert!(
        log.len() > 1 && log.iter().all(|l| l.ends_with(" 503")),
        "it asked again while Kargo's API server answered 503: {log:?}"
    );
    assert!(env.tf.state_list().is_empty());

    env.sandbox.install_kargo();
    env.tf.apply().ok();
    assert!(env.get("projects", None, "later").is_some());
    env.tf.assert_no_changes();
}

#[test]
fn settings_that_do_not_go_with_the_api_server_are_refused_on_their_attribute() {
    let env = Env::over(Transport::ApiServer);
    let password = env.sandbox.admin_password().to_string();
    let admin = format!("admin_password = \"{password}\"");

    // Beside a kubeconfig: on the api_server block.
    env.tf.write_main(&format!(
        "{}\n{}",
        provider(
            &format!(
                "  config_path = \"{}\"",
                env.sandbox.kubeconfig_path().display()
            ),
            &reach(&env, &admin)
        ),
        project("p")
    ));
    let out = env.tf.run(&["validate", "-json"]).failed();
    let found = out.json_diagnostics_at();
    let (d, at) = found
        .iter()
        .find(|(d, _)| d.summary == "Invalid provider setting api_server")
        .unwrap_or_else(|| panic!("{found:?}"));
    assert_eq!(d.severity, "error");
    assert!(
        d.detail.contains("conflicts with config_path: the provider connects either through Kargo's API server (api_server) or through the Kubernetes API, not both"),
        "{}",
        d.detail
    );
    // Terraform places a diagnostic on a nested block at the block it is in: the provider's.
    assert_eq!(
        at.line,
        At::nth(env.tf.path(), "main.tf", "provider \"kargo\" {", 1).line
    );

    // A token and the admin password: on admin_password.
    env.tf.write_main(&format!(
        "{}\n{}",
        provider(
            "",
            &reach(&env, &format!("token          = \"t0ken\"\n    {admin}"))
        ),
        project("p")
    ));
    let out = env.tf.run(&["validate", "-json"]).failed();
    let found = out.json_diagnostics_at();
    assert_eq!(found.len(), 1, "{found:?}");
    let (d, at) = &found[0];
    assert_eq!(
        d.summary,
        "Invalid provider setting api_server.admin_password"
    );
    assert!(d.detail.contains("conflicts with token"), "{}", d.detail);
    assert_eq!(
        *at,
        At::nth(env.tf.path(), "main.tf", &format!("\"{password}\""), 1)
    );
    assert!(!out.all().contains("t0ken"));

    // force_conflicts: a warning on it at plan, which goes on.
    env.tf.write_main(&format!(
        "{}\n{}",
        provider("  force_conflicts = true", &reach(&env, &admin)),
        project("p")
    ));
    env.tf.run(&["validate"]).ok();
    let out = env.tf.run(&["plan", "-json"]).ok();
    let found = out.json_diagnostics_at();
    let (d, at) = found
        .iter()
        .find(|(d, _)| d.summary == "force_conflicts has no effect through Kargo's API server")
        .unwrap_or_else(|| panic!("{found:?}"));
    assert_eq!(d.severity, "warning");
    assert!(
        d.detail.contains("full updates, not server-side apply"),
        "{}",
        d.detail
    );
    assert_eq!(*at, At::nth(env.tf.path(), "main.tf", "true", 1));

    // Kargo's credentials for the promotion preview: an error on read_kargo_credentials.
    env.tf.write_main(&format!(
        "{}\n{}",
        provider(
            "  promotion_preview {\n    read_kargo_credentials = true\n  }",
            &reach(&env, &admin)
        ),
        project("p")
    ));
    env.sandbox.reset_requests();
    let out = env.tf.run(&["plan", "-json"]).failed();
    let found = out.json_diagnostics_at();
    let (d, at) = found
        .iter()
        .find(|(d, _)| d.summary == "Kargo's Git credentials cannot be read through its API server")
        .unwrap_or_else(|| panic!("{found:?}"));
    assert_eq!(d.severity, "error");
    assert!(
        d.detail
            .contains("never returns the values of its credential Secrets"),
        "{}",
        d.detail
    );
    assert_eq!(*at, At::nth(env.tf.path(), "main.tf", "true", 1));
    env.assert_no_requests("a configuration refused at plan sends nothing");
    assert!(env.get("projects", None, "p").is_none());
}

#[test]
fn the_api_server_url_and_admin_password_come_from_the_environment() {
    let mut env = Env::over(Transport::ApiServer);
    let url = env.sandbox.server_url().to_string();
    let password = env.sandbox.admin_password().to_string();
    env.tf
        .env("KARGO_API_URL", &url)
        .env("KARGO_ADMIN_PASSWORD", &password);
    env.tf.write_main(&format!(
        "{}\n{}",
        provider("", &ca(&env)),
        project("from-env")
    ));
    env.tf.run(&["validate"]).ok();
    // Everything logged, and still neither the password nor a token the login returned.
    env.tf.env("TF_LOG", "TRACE");
    let traced = env.tf.apply().ok();
    env.tf.env("TF_LOG", "");
    assert!(
        traced
            .stderr
            .contains("logged in to Kargo's API server as admin"),
        "{}",
        traced.stderr
    );
    assert!(!traced.all().contains(&password), "the password was logged");
    assert!(
        !traced.all().contains(SANDBOX_JWT_HEADER),
        "an admin token was logged"
    );
    assert!(env.get("projects", None, "from-env").is_some());
    let requests = env.sandbox.requests();
    assert!(logins(&requests) >= 1, "{:?}", rest_log(&env));
    assert!(
        requests
            .iter()
            .any(|r| r.method == "POST" && r.path == "/v1beta1/resources" && r.code == 201),
        "{:?}",
        rest_log(&env)
    );
    env.assert_went_through_transport();
    env.tf.assert_no_changes();

    // The URL alone selects Kargo's API server, over the kubeconfig Terraform's environment
    // might name; without the CA its certificate is not trusted, and the error says where to
    // give it.
    env.tf.write_main(&format!(
        "{REQUIRED_PROVIDERS}provider \"kargo\" {{}}\n\n{}{}",
        project("from-env"),
        project("untrusted")
    ));
    env.sandbox.reset_requests();
    let out = env.tf.apply().failed();
    out.assert_error(
        "kargo_project.untrusted",
        &[
            &format!("could not reach Kargo's API server at {url}"),
            "certificate",
            "the TLS settings (`api_server.ca_certificate`)",
        ],
    );
    assert!(env.get("projects", None, "untrusted").is_none());
    env.assert_no_requests("no request gets through an untrusted TLS handshake");

    // Without the password there is nothing to authenticate with: said at plan, naming the
    // variable that chose Kargo's API server (Terraform does not validate an empty provider
    // block).
    env.tf.env("KARGO_ADMIN_PASSWORD", "");
    let out = env.tf.run(&["plan", "-json"]).failed();
    let found = out.json_diagnostics();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].summary,
        "Invalid provider setting KARGO_API_URL (environment variable)"
    );
    assert_eq!(
        found[0].detail,
        "needs KARGO_API_TOKEN (a Kargo API token) or KARGO_ADMIN_PASSWORD (the admin \
         account's password) to authenticate to Kargo's API server"
    );
    env.assert_no_requests("an incomplete configuration sends nothing");

    // The same in the block: on the block's missing credentials, at validate.
    env.tf.write_main(&format!(
        "{}\n{}",
        provider("", &ca(&env)),
        project("from-env")
    ));
    let out = env.tf.run(&["validate", "-json"]).failed();
    let found = out.json_diagnostics();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].summary,
        "Invalid provider setting api_server.token"
    );
    assert!(
        found[0]
            .detail
            .starts_with("a token or admin_password is required"),
        "{found:?}"
    );
}

#[test]
fn insecure_skip_tls_verify_reaches_a_server_whose_certificate_is_not_trusted() {
    let env = Env::over(Transport::ApiServer);
    // No CA: only skipping verification lets the provider through.
    let config = |skip: bool| {
        let inner = format!(
            "    url                      = \"{}\"\n    admin_password           = \"{}\"\n    insecure_skip_tls_verify = {skip}\n",
            env.sandbox.server_url(),
            env.sandbox.admin_password()
        );
        format!("{}\n{}", provider("", &inner), project("p"))
    };
    env.tf.write_main(&config(false));
    let out = env.tf.apply().failed();
    out.assert_error(
        "kargo_project.p",
        &[
            &format!(
                "could not reach Kargo's API server at {}",
                env.sandbox.server_url()
            ),
            "certificate",
        ],
    );
    assert!(env.get("projects", None, "p").is_none());

    env.tf.write_main(&config(true));
    env.tf.apply().ok();
    assert!(env.get("projects", None, "p").is_some());
    env.assert_went_through_transport();
    env.tf.assert_no_changes();
}

/// Kargo served under a base path (its `api.basePath`): the URL carries it, and every request
/// goes under it.
#[test]
fn a_base_path_in_the_url_is_where_every_request_goes() {
    let env = env_with(Options::default().http2().rest_base_path("/kargo"));
    let base = env.sandbox.api_server_url();
    assert_eq!(base, format!("{}/kargo", env.sandbox.server_url()));
    let password = env.sandbox.admin_password().to_string();
    let block = |url: &str| {
        provider(
            "",
            &format!(
                "    url            = \"{url}\"\n    admin_password = \"{password}\"\n{}",
                ca(&env)
            ),
        )
    };
    env.tf
        .write_main(&format!("{}\n{}", block(&base), project("based")));
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    assert!(env.get("projects", None, "based").is_some());
    // The sandbox serves Kargo's routes only under the base path, and logs them without it.
    let requests = env.sandbox.requests();
    assert!(
        requests.iter().all(|r| r.path.starts_with("/v1beta1/"))
            && requests
                .iter()
                .any(|r| r.method == "POST" && r.path == "/v1beta1/resources" && r.code == 201),
        "{:?}",
        rest_log(&env)
    );

    // Without the base path the API server is not there: said with the URL and what to check.
    env.sandbox.reset_requests();
    env.tf.write_main(&format!(
        "{}\n{}{}",
        block(env.sandbox.server_url()),
        project("based"),
        project("unbased")
    ));
    let out = env.tf.apply().failed();
    // At once, on the first read (the refresh of what exists), not after api_wait_timeout.
    out.assert_error(
        "kargo_project.based",
        &[
            &format!(
                "Kargo's API server at {} does not serve the route for the admin login",
                env.sandbox.server_url()
            ),
            "Check `api_server.url`, including the base path Kargo is served under",
        ],
    );
    assert!(env.get("projects", None, "unbased").is_none());
    assert!(
        env.sandbox
            .requests()
            .iter()
            .all(|r| r.path == "/v1beta1/login" && r.code == 404),
        "only the login was tried: {:?}",
        rest_log(&env)
    );
}
