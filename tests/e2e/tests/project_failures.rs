//! kargo_project failure paths end to end: bad credentials, an unreachable API, Ctrl-C
//! during a wait, a delete that cannot finish — state stays valid and messages say what to do.

use std::time::Duration;

use kargo_e2e::{Env, explicit_provider};
use kargo_sandbox::HttpFault;

#[test]
fn wrong_token_fails_at_apply_with_a_clear_message_and_plan_needs_no_cluster() {
    let env = Env::new();
    let hcl = explicit_provider(&env, env.sandbox.server_url(), "not-the-token");
    env.tf.write_main(&format!(
        "{hcl}\nresource \"kargo_project\" \"p\" {{\n  name = \"p\"\n}}\n"
    ));
    env.tf.run(&["plan"]).ok();
    env.assert_no_requests("planning a new project sends nothing");
    let out = env.tf.apply().failed();
    assert!(
        out.flat()
            .contains("rejected the provider's credentials (401 Unauthorized)"),
        "{}",
        out.stderr
    );
    assert!(
        !out.all().contains("not-the-token"),
        "the token must never be printed"
    );
    assert!(env.tf.state_list().is_empty(), "nothing was created");
}

#[test]
fn unreachable_api_fails_at_apply_naming_the_host() {
    let env = Env::new();
    let hcl = explicit_provider(&env, "https://127.0.0.1:1", env.sandbox.token());
    env.tf.write_main(&format!(
        "{hcl}\nresource \"kargo_project\" \"p\" {{\n  name = \"p\"\n}}\n"
    ));
    env.tf.run(&["plan"]).ok();
    let out = env.tf.apply().failed();
    assert!(out.stderr.contains("127.0.0.1:1"), "{}", out.stderr);
    assert!(
        !out.all().contains(env.sandbox.token()),
        "the token must never be printed"
    );
}

#[test]
fn token_never_appears_in_trace_logs() {
    let mut env = Env::new();
    let hcl = explicit_provider(&env, env.sandbox.server_url(), env.sandbox.token());
    env.tf.write_main(&format!(
        "{hcl}\nresource \"kargo_project\" \"p\" {{\n  name = \"logs\"\n}}\n"
    ));
    env.tf.env("TF_LOG", "TRACE");
    let out = env.tf.apply().ok();
    assert!(
        out.stderr.contains("provider.terraform-provider-kargo"),
        "provider logs reach Terraform's log"
    );
    assert!(
        !out.all().contains(env.sandbox.token()),
        "token leaked into the logs"
    );
    let out = env.tf.destroy().ok();
    assert!(
        !out.all().contains(env.sandbox.token()),
        "token leaked into the logs"
    );
}

#[test]
fn ctrl_c_during_the_create_wait_leaves_a_valid_state() {
    let env = Env::new();
    // Without Kargo's controller the project never becomes Ready, so create waits.
    env.sandbox.uninstall_kargo();
    env.config("resource \"kargo_project\" \"p\" {\n  name = \"waiting\"\n}\n");
    let mut child = env
        .tf
        .command(&["apply", "-auto-approve"])
        .spawn()
        .expect("start terraform");
    env.eventually("the project to be created", Duration::from_secs(30), |e| {
        e.get("projects", None, "waiting").is_some()
    });
    // The provider is waiting once it watches the project it created.
    env.eventually("apply to watch the project", Duration::from_secs(30), |e| {
        e.sandbox
            .requests()
            .iter()
            .any(|r| r.verb == "watch" && r.resource == "projects")
    });
    // SIGINT, as Ctrl-C would send: Terraform asks the provider to stop.
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let waited = std::time::Instant::now();
    let exit = child.wait().unwrap();
    assert!(
        waited.elapsed() < Duration::from_secs(20),
        "the wait must stop promptly"
    );
    let _ = exit;
    let list = env.tf.state_list();
    assert!(
        list.contains(&"kargo_project.p".to_string()),
        "the created project is recorded: {list:?}"
    );
    // With Kargo back, the state refreshes and converges.
    env.sandbox.install_kargo();
    env.eventually(
        "the project to become ready",
        Duration::from_secs(10),
        |e| {
            e.get("projects", None, "waiting")
                .is_some_and(|p| p["status"]["conditions"][0]["status"] == "True")
        },
    );
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    assert_eq!(env.tf.resource("kargo_project.p")["ready"], true);
}

#[test]
fn delete_that_cannot_finish_times_out_naming_the_finalizer_and_a_later_destroy_finishes() {
    let env = Env::new();
    env.config(
        "resource \"kargo_project\" \"p\" {\n  name = \"stuck\"\n  timeouts { delete = \"2s\" }\n}\n",
    );
    env.tf.apply().ok();
    // Kargo's controller is gone: nobody processes the project's finalizer.
    env.sandbox.uninstall_kargo();
    let out = env.tf.destroy().failed();
    let text = out.flat();
    assert!(
        text.contains(
            "Project \"stuck\" is terminating, held by finalizers [kargo.akuity.io/finalizer]"
        ),
        "{text}"
    );
    assert!(text.contains("run destroy again"), "{text}");
    assert!(
        env.tf.state_list().contains(&"kargo_project.p".to_string()),
        "still in state"
    );
    // Terminating is gone, as for every resource: the plan creates it again.
    let plan = env.tf.plan_json();
    assert_eq!(
        kargo_e2e::planned_actions(&plan, "kargo_project.p"),
        kargo_e2e::actions(&["create"]),
        "{plan}"
    );
    env.sandbox.install_kargo();
    env.tf.destroy().ok();
    assert!(env.get("projects", None, "stuck").is_none());
    assert!(env.get("namespaces", None, "stuck").is_none());
}

#[test]
fn a_project_update_is_bounded_by_timeouts_update_and_keeps_the_prior_state() {
    let env = Env::new();
    let hcl = |team: &str| {
        format!(
            "resource \"kargo_project\" \"p\" {{\n  name   = \"shop\"\n  labels = {{ team = \"{team}\" }}\n  timeouts {{ update = \"1s\" }}\n}}\n"
        )
    };
    env.config(&hcl("payments"));
    env.tf.apply().ok();
    // Every write of the project is held for 3s before the API server handles it.
    env.sandbox
        .inject_fault(
            HttpFault::delay(Duration::from_secs(3))
                .verb("patch")
                .resource("projects"),
        )
        .expect("inject fault");
    env.config(&hcl("checkout"));
    let started = std::time::Instant::now();
    let out = env.tf.apply().failed();
    out.assert_error(
        "kargo_project.p",
        &["Failed to update the project", "`timeouts.update`"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the update gave up at its bound"
    );
    assert_eq!(
        env.tf.resource("kargo_project.p")["labels"],
        serde_json::json!({"team": "payments"}),
        "the prior state stands"
    );
    env.sandbox.clear_faults().expect("clear faults");
    env.tf.apply().ok();
    env.tf.assert_no_changes();
    assert_eq!(
        env.get("projects", None, "shop").unwrap()["metadata"]["labels"]["team"],
        "checkout"
    );
}
