//! Every route the provider calls on Kargo's API server exists in Kargo v1.11.2's swagger with
//! that method, those path parameters and those query parameters.

use serde_json::Value;
use terraform_provider_kargo::kargo::rest::{ROUTES, WATCH_ROUTES};

fn path_params(template: &str) -> Vec<&str> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

#[test]
fn every_route_the_provider_calls_is_in_kargos_swagger() {
    let Some(path) = kargo_sandbox::reference::for_test("kargo/v1.11.2/swagger.json") else {
        return;
    };
    let swagger: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut problems = Vec::new();
    for (method, template, query) in ROUTES {
        let op = &swagger["paths"][*template][method.to_lowercase()];
        if !op.is_object() {
            problems.push(format!("{method} {template} is not in the swagger"));
            continue;
        }
        let declared = |place: &str| -> Vec<&str> {
            op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == place)
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut wanted = path_params(template);
        let mut have = declared("path");
        wanted.sort_unstable();
        have.sort_unstable();
        if wanted != have {
            problems.push(format!(
                "{method} {template}: path parameters {wanted:?}, the swagger declares {have:?}"
            ));
        }
        for q in *query {
            if !declared("query").contains(q) {
                problems.push(format!(
                    "{method} {template}: query parameter {q:?} is not declared"
                ));
            }
        }
    }
    for template in WATCH_ROUTES {
        if !swagger["paths"][*template]["get"].is_object() {
            problems.push(format!("watched GET {template} is not in the swagger"));
        }
        if !ROUTES.iter().any(|(m, t, _)| *m == "GET" && t == template) {
            problems.push(format!(
                "watched {template} is not among the provider's routes"
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The paths the client builds fit the table's templates.
#[test]
fn the_paths_the_client_builds_are_routes_of_the_table() {
    use terraform_provider_kargo::kargo::Kind;
    use terraform_provider_kargo::kargo::rest::{list_path, object_path};
    let matches = |method: &str, path: &str| {
        ROUTES.iter().any(|(m, t, _)| {
            *m == method && {
                let a: Vec<&str> = t.split('/').collect();
                let b: Vec<&str> = path.split('/').collect();
                a.len() == b.len()
                    && a.iter()
                        .zip(&b)
                        .all(|(x, y)| x == y || (x.starts_with('{') && !y.is_empty()))
            }
        })
    };
    for kind in Kind::ALL {
        if let Some(path) = object_path(kind, Some("p"), "n") {
            assert!(matches("GET", &path), "GET {path} ({kind})");
        }
        if let Some(path) = list_path(kind, Some("p")) {
            assert!(matches("GET", &path), "GET {path} ({kind})");
        }
    }
}
