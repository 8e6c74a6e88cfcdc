//! Schemathesis (from PyPI) against the live server's `/openapi.json`, with credentials: every
//! response of thousands of generated requests must be documented and match its schema, and
//! none may be a server error.

use std::time::Duration;

use crate::api::fixture;

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_response_outside_the_schema() {
    let st = which("schemathesis").unwrap_or_else(|| {
        panic!("schemathesis is not installed: install it with `pip install schemathesis`")
    });
    let f = fixture().await.unwrap();
    // A service admin: every operation is reachable, so responses go beyond 401/403/404.
    let token = f.api.login("carol", "carol-pw").await.unwrap();
    let base = f.api.base.clone();
    let mut cmd = tokio::process::Command::new(st);
    cmd.args([
        "run",
        &format!("{base}/openapi.json"),
        "--url",
        &base,
        "--header",
        &format!("Authorization: Bearer {token}"),
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
        // Logging out would end the run's session; the stream never ends by itself (both are
        // covered by the API tests).
        "--exclude-operation-id",
        "logout",
        "--exclude-operation-id",
        "streamEvents",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "40",
        "--workers",
        "2",
        "--request-timeout",
        "20",
        "--seed",
        "20261126",
    ])
    .env("SCHEMATHESIS_HOOKS", "")
    // It keeps a cache in its working directory: not in the repository.
    .current_dir(std::env::temp_dir())
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(900), cmd.output())
        .await
        .expect("schemathesis finished within 15 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}\nserver log:\n{}",
        f.serve.log_text()
    );
    println!("{stdout}");
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}
