//! The shipped deployment files: the Kubernetes manifests parse and fit together (ports,
//! probes, volumes, the certfront.toml they carry), the PrometheusRule is generated from
//! `config/prometheus/alerts.yml`, and the image and systemd unit start certfront the way
//! the docs say. (`.ci/` lints the Dockerfile with hadolint, verifies the unit with
//! systemd-analyze and validates the manifests against the Kubernetes schemas.)

use std::path::{Path, PathBuf};

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Real(s) => serde_json::json!(s.parse::<f64>().expect("float")),
        Yaml::Integer(i) => serde_json::json!(i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        other => panic!("unexpected key {other:?}"),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Null => Value::Null,
        other => panic!("unsupported YAML {other:?}"),
    }
}

/// Every document of a YAML file.
fn docs(path: &str) -> Vec<Value> {
    YamlLoader::load_from_str(&read(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .iter()
        .map(to_json)
        .collect()
}

const K8S: &str = "deploy/kubernetes";
const RULE: &str = "deploy/kubernetes/prometheusrule.yaml";

/// The PrometheusRule for `alerts.yml`: its `groups:` block, indented under `spec:`.
fn prometheus_rule(alerts: &str) -> String {
    let start = alerts.find("\ngroups:").expect("alerts.yml has groups:") + 1;
    let mut out = String::from(
        "# GENERATED from config/prometheus/alerts.yml by tests/tests/deploy.rs; do not edit.\n\
         # After changing alerts.yml: CERTFRONT_BLESS=1 cargo test -p certfront-tests -- deploy\n\
         apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: certfront\n  \
         namespace: certfront\n  labels:\n    app.kubernetes.io/name: certfront\nspec:\n",
    );
    for line in alerts[start..].lines() {
        if !line.is_empty() {
            out.push_str("  ");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn the_prometheus_rule_is_the_shipped_alert_rules() {
    let expected = prometheus_rule(&read("config/prometheus/alerts.yml"));
    if std::env::var_os("CERTFRONT_BLESS").is_some() {
        std::fs::write(repo().join(RULE), &expected).expect("write");
    }
    assert!(
        read(RULE) == expected,
        "{RULE} is out of date with config/prometheus/alerts.yml; regenerate it with \
         CERTFRONT_BLESS=1 cargo test -p certfront-tests -- deploy"
    );
    // and as data: the same groups, rule for rule
    let alerts = &docs("config/prometheus/alerts.yml")[0];
    let rule = &docs(RULE)[0];
    assert_eq!(rule["spec"]["groups"], alerts["groups"]);
    assert!(
        rule["spec"]["groups"][0]["rules"]
            .as_array()
            .expect("rules")
            .len()
            >= 4
    );
}

/// Every manifest in the directory, by file.
fn manifests() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(repo().join(K8S))
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    files.sort();
    for file in files {
        for doc in docs(&format!("{K8S}/{file}")) {
            out.push((file.clone(), doc));
        }
    }
    out
}

fn find<'a>(all: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    &all.iter()
        .find(|(_, d)| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .1
}

/// Whether `selector` (matchLabels or a Service selector) picks `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .expect("selector")
        .iter()
        .all(|(k, v)| &labels[k] == v)
}

#[test]
fn the_kubernetes_manifests_fit_together() {
    let all = manifests();
    // kustomization lists exactly the files of the directory
    let kustomization = &docs(&format!("{K8S}/kustomization.yaml"))[0];
    let mut listed: Vec<String> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("name").to_owned())
        .collect();
    listed.sort();
    let mut files: Vec<String> = all.iter().map(|(f, _)| f.clone()).collect();
    files.dedup();
    assert_eq!(listed, files);
    for (file, doc) in &all {
        assert!(
            doc["apiVersion"].is_string() && doc["kind"].is_string(),
            "{file}"
        );
        if doc["kind"] != "Namespace" {
            assert_eq!(doc["metadata"]["namespace"], "certfront", "{file}");
        }
    }

    let deployment = find(&all, "Deployment", "certfront");
    assert_eq!(deployment["spec"]["replicas"], 2, "two replicas");
    let pod = &deployment["spec"]["template"];
    assert!(selects(
        &deployment["spec"]["selector"]["matchLabels"],
        &pod["metadata"]["labels"]
    ));
    let spec = &pod["spec"];
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    let containers = spec["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    let port = |name: &str| -> u16 {
        c["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no container port {name}"))["containerPort"]
            .as_u64()
            .expect("number") as u16
    };
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], "admin", "{probe}");
    }

    // volumes: every mount has its volume; certificate Secrets are whole directories
    let volumes = spec["volumes"].as_array().expect("volumes");
    let mounts = c["volumeMounts"].as_array().expect("mounts");
    for m in mounts {
        let volume = volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap_or_else(|| panic!("mount {} has no volume", m["name"]));
        if volume["secret"].is_object() || volume["configMap"].is_object() {
            assert!(
                m["subPath"].is_null(),
                "{} mounted with subPath: no hot reload",
                m["name"]
            );
        }
    }
    let mount_paths: Vec<&str> = mounts
        .iter()
        .map(|m| m["mountPath"].as_str().expect("path"))
        .collect();

    // the certfront.toml it runs: valid, its ports are the container's, its files are mounted
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg"))
        .collect();
    assert_eq!(args, ["run", "-c", "/etc/certfront/config/certfront.toml"]);
    assert!(mount_paths.contains(&"/etc/certfront/config"));
    let toml = find(&all, "ConfigMap", "certfront-config")["data"]["certfront.toml"]
        .as_str()
        .expect("certfront.toml");
    let config = certfront_config::parse(toml, Path::new("/etc/certfront"))
        .unwrap_or_else(|e| panic!("the ConfigMap's certfront.toml: {e}"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.server.listen[0].port(), port("https"));
    assert_eq!(
        config.server.http_redirect.expect("redirect").port(),
        port("http")
    );
    assert_eq!(config.server.admin.expect("admin").port(), port("admin"));
    let mut files: Vec<PathBuf> = config.tls.trust.clone();
    files.extend(config.tls.ticket_key_file.clone());
    files.push(config.server.state_dir.clone());
    for host in &config.hosts {
        files.extend(host.source.files().into_iter().map(Path::to_path_buf));
        files.extend(host.upstream_ca.clone());
    }
    for file in &files {
        assert!(
            mount_paths.iter().any(|m| file.starts_with(m)),
            "{} is on no volume",
            file.display()
        );
    }
    assert!(
        config.tls.ticket_key_file.is_some(),
        "replicas share ticket keys"
    );

    // Services reach the pods by named ports; the ServiceMonitor finds the admin one
    for name in ["certfront", "certfront-admin"] {
        let svc = find(&all, "Service", name);
        assert!(
            selects(&svc["spec"]["selector"], &pod["metadata"]["labels"]),
            "{name}"
        );
        for p in svc["spec"]["ports"].as_array().expect("ports") {
            port(p["targetPort"].as_str().expect("named targetPort"));
        }
    }
    let public = find(&all, "Service", "certfront");
    let public_ports: Vec<&Value> = public["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .collect();
    assert!(
        public_ports.iter().all(|p| p["targetPort"] != "admin"),
        "admin is not public"
    );
    let admin = find(&all, "Service", "certfront-admin");
    assert_eq!(admin["spec"]["type"], "ClusterIP");
    let monitor = find(&all, "ServiceMonitor", "certfront");
    assert!(selects(
        &monitor["spec"]["selector"]["matchLabels"],
        &admin["metadata"]["labels"]
    ));
    assert!(!selects(
        &monitor["spec"]["selector"]["matchLabels"],
        &public["metadata"]["labels"]
    ));
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "admin");
    // the job label CertfrontDown matches (up{job="certfront"})
    let job_label = monitor["spec"]["jobLabel"].as_str().expect("jobLabel");
    assert_eq!(admin["metadata"]["labels"][job_label], "certfront");
    assert!(read("config/prometheus/alerts.yml").contains("up{job=\"certfront\"}"));
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    let pdb = find(&all, "PodDisruptionBudget", "certfront");
    assert!(selects(
        &pdb["spec"]["selector"]["matchLabels"],
        &pod["metadata"]["labels"]
    ));
}

#[test]
fn the_image_and_the_systemd_unit_run_certfront_as_documented() {
    let dockerfile = read("Dockerfile");
    let config_path = "/etc/certfront/certfront.toml";
    assert!(dockerfile.contains(&format!("COPY deploy/docker/certfront.toml {config_path}")));
    assert!(dockerfile.contains(&format!("ENV CERTFRONT_CONFIG={config_path}")));
    assert!(
        dockerfile.contains("HEALTHCHECK")
            && dockerfile.contains("CMD [\"/usr/local/bin/certfront\", \"health\"]")
    );
    assert!(dockerfile.contains("USER 65532:65532"));
    assert!(dockerfile.contains("setcap cap_net_bind_service=+ep"));
    let image = certfront_config::load(&repo().join("deploy/docker/certfront.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(image.server.listen[0].port(), 443);
    assert!(dockerfile.contains("VOLUME [\"/var/lib/certfront\"]"));
    assert_eq!(image.server.state_dir, Path::new("/var/lib/certfront"));
    let admin = image.server.admin.expect("admin for HEALTHCHECK").port();
    assert!(dockerfile.contains(&format!("EXPOSE 443 80 {admin}")));

    let unit = read("deploy/systemd/certfront.service");
    for line in [
        "ExecStart=/usr/local/bin/certfront run -c /etc/certfront/certfront.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "User=certfront",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "ProtectSystem=strict",
        "StateDirectory=certfront",
        "ReadWritePaths=/var/lib/certfront",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
}

#[test]
fn the_packages_install_a_valid_config_where_the_unit_reads_it() {
    // packaging/certfront.toml becomes /etc/certfront/certfront.toml, a configuration file
    // of both packages (cargo-deb: everything under /etc; rpm: noreplace).
    let manifest = read("proxy/Cargo.toml");
    assert!(
        manifest
            .contains(r#"["../packaging/certfront.toml", "etc/certfront/certfront.toml", "644"]"#)
    );
    assert!(manifest.contains(
        r#"{ source = "packaging/certfront.toml", dest = "/etc/certfront/certfront.toml", mode = "644", config = "noreplace" }"#
    ));
    let config = certfront_config::load(&repo().join("packaging/certfront.toml"))
        .unwrap_or_else(|e| panic!("packaging/certfront.toml: {e}"));
    assert_eq!(config.server.listen[0].port(), 443);
    // The internal CA goes where the unit may write and the tmpfiles entry creates it.
    assert_eq!(config.server.state_dir, Path::new("/var/lib/certfront"));
    assert!(
        config
            .hosts
            .iter()
            .all(|h| matches!(h.source, certfront_certs::CertSource::Internal)),
        "the example needs no certificate files"
    );
    let unit = read("deploy/systemd/certfront.service");
    assert!(
        unit.lines()
            .any(|l| l == "ReadWritePaths=/var/lib/certfront")
    );
    let tmpfiles = read("deploy/systemd/certfront.tmpfiles");
    for line in [
        "d /etc/certfront 0750 root certfront -",
        "d /var/lib/certfront 0700 certfront certfront -",
    ] {
        assert!(tmpfiles.lines().any(|l| l == line), "tmpfiles lacks {line}");
    }
    let sysusers = read("deploy/systemd/certfront.sysusers");
    assert!(sysusers.lines().any(|l| l.starts_with("u certfront ")));
}
