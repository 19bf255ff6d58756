//! The container image and the Kubernetes manifests (deploy/).
//!
//! The image's root file system (scripts/image --rootfs) runs the quickstart under tini as the
//! image's user through chroot; where podman is present, the image is built from
//! deploy/Containerfile and run (this machine's sandbox refuses containers the rlimits podman
//! sets: the test says so and keeps what it checked). Every manifest parses, the references
//! between them hold, and every config they carry passes `ferrentd --dry-run`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_yaml::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(root().join("scripts/image"))
        .args(["--rootfs", dir.path().join("rootfs").to_str().unwrap()])
        .env("FERRENTD_BIN", env!("CARGO_BIN_EXE_ferrentd"))
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/image --rootfs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

#[test]
fn image_tree_runs_the_quickstart_as_the_fluent_user() {
    let dir = rootfs();
    let rf = dir.path().join("rootfs");
    for p in [
        "usr/bin/ferrentd",
        "usr/bin/fluentd",
        "usr/bin/tini",
        "bin/sh",
        "bin/entrypoint.sh",
        "fluentd/etc/fluent.conf",
        "fluentd/log",
        "lib/x86_64-linux-gnu/libsystemd.so.0",
        "lib64/ld-linux-x86-64.so.2",
    ] {
        assert!(rf.join(p).exists(), "image lacks /{p}");
    }
    assert_eq!(
        std::fs::read_to_string(rf.join("fluentd/etc/fluent.conf")).unwrap(),
        std::fs::read_to_string(root().join("conf.d/quickstart.conf")).unwrap()
    );
    assert!(std::fs::read_to_string(rf.join("etc/passwd"))
        .unwrap()
        .contains("fluent:x:999:999:"));
    let containerfile = std::fs::read_to_string(root().join("deploy/Containerfile")).unwrap();
    for line in [
        "FROM scratch",
        "USER 999:999",
        "ENTRYPOINT [\"/usr/bin/tini\", \"--\", \"/bin/entrypoint.sh\"]",
        "CMD [\"fluentd\"]",
    ] {
        assert!(containerfile.contains(line), "Containerfile lacks {line}");
    }

    // The image's entrypoint, under tini, as uid 999, with only the image's own files.
    let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chroot (coreutils) is installed");
    let mut child = Command::new(chroot)
        .args(["--userspec=999:999", rf.to_str().unwrap()])
        .args(["/usr/bin/tini", "-s", "--", "/bin/entrypoint.sh", "fluentd"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("FLUENTD_CONF", "fluent.conf")
        .env("FLUENTD_OPT", "-q")
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chroot runs (the suite runs as root)");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines.len() < 2 && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(l);
        }
    }
    // SIGTERM to tini (PID 1 of the image) reaches ferrentd, which stops cleanly.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "the image's process exited with {status}");
    assert_eq!(lines.len(), 2, "quickstart lines: {lines:?}");
    assert!(
        lines[0].contains(" quickstart.hello: {\"message\":\"hello from ferrentd\",\"seq\":0,"),
        "{}",
        lines[0]
    );
}

#[test]
fn image_builds_with_podman_and_runs_where_containers_are_allowed() {
    let image = format!("localhost/ferrentd-test:{}", std::process::id());
    let built = Command::new(root().join("scripts/image"))
        .env("IMAGE", &image)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "scripts/image failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let run = Command::new("timeout")
        .args(["-s", "TERM", "8", "podman", "run", "--rm", &image])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    if stderr.contains("Operation not permitted") || stderr.contains("permission denied") {
        eprintln!(
            "containers cannot run on this machine ({}); the image was built and its tree was run through chroot",
            stderr.lines().last().unwrap_or("")
        );
    } else {
        assert!(
            stdout.contains("quickstart.hello: {\"message\":\"hello from ferrentd\""),
            "podman run printed: {stdout}{stderr}"
        );
    }
    let _ = Command::new("podman").args(["rmi", "-f", &image]).output();
}

struct Manifests {
    docs: Vec<(String, Value)>,
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    Some(cur)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    s(v, path).and_then(Value::as_str).unwrap_or("")
}

fn load() -> Manifests {
    let mut docs = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "manifests: {files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for d in serde_yaml::Deserializer::from_str(&text) {
            let v =
                Value::deserialize(d).unwrap_or_else(|e| panic!("{}: not YAML: {e}", f.display()));
            assert!(
                !str_at(&v, &["kind"]).is_empty() && !str_at(&v, &["apiVersion"]).is_empty(),
                "{}: a document without kind/apiVersion",
                f.display()
            );
            docs.push((f.file_name().unwrap().to_string_lossy().into_owned(), v));
        }
    }
    Manifests { docs }
}

use serde::Deserialize;

impl Manifests {
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.docs
            .iter()
            .filter(|(_, v)| str_at(v, &["kind"]) == kind)
            .map(|(_, v)| v)
            .collect()
    }

    fn find(&self, kind: &str, ns: &str, name: &str) -> Option<&Value> {
        self.of_kind(kind).into_iter().find(|v| {
            str_at(v, &["metadata", "name"]) == name
                && (ns.is_empty() || str_at(v, &["metadata", "namespace"]) == ns)
        })
    }

    fn workloads(&self) -> Vec<&Value> {
        let mut w = self.of_kind("DaemonSet");
        w.extend(self.of_kind("Deployment"));
        w
    }
}

fn seq(v: Option<&Value>) -> Vec<&Value> {
    v.and_then(Value::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

/// Container ports by name and number.
fn ports(container: &Value) -> (Vec<String>, Vec<u64>) {
    let mut names = Vec::new();
    let mut numbers = Vec::new();
    for p in seq(container.get("ports")) {
        if let Some(n) = p.get("name").and_then(Value::as_str) {
            names.push(n.to_string());
        }
        if let Some(n) = p.get("containerPort").and_then(Value::as_u64) {
            numbers.push(n);
        }
    }
    (names, numbers)
}

fn port_ok(port: &Value, names: &[String], numbers: &[u64]) -> bool {
    match port {
        Value::String(n) => names.contains(n),
        Value::Number(n) => n.as_u64().is_some_and(|n| numbers.contains(&n)),
        _ => false,
    }
}

/// Parameters named `key` anywhere in a config text (first word of a line).
fn conf_values(conf: &str, key: &str) -> Vec<String> {
    conf.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(key)).then(|| w.next().unwrap_or("").to_string())
        })
        .collect()
}

#[test]
fn manifests_reference_each_other_consistently() {
    let m = load();
    let workloads = m.workloads();
    assert_eq!(m.of_kind("DaemonSet").len(), 1);
    assert!(
        m.of_kind("Deployment").len() >= 2,
        "aggregator and sidecar example"
    );
    for w in &workloads {
        let name = str_at(w, &["metadata", "name"]);
        let ns = str_at(w, &["metadata", "namespace"]);
        let spec = s(w, &["spec", "template", "spec"]).unwrap();
        // The selector selects the template.
        let tmpl_labels = s(w, &["spec", "template", "metadata", "labels"]).unwrap();
        if let Some(Value::Mapping(sel)) = s(w, &["spec", "selector", "matchLabels"]) {
            for (k, v) in sel {
                assert_eq!(
                    tmpl_labels.get(k),
                    Some(v),
                    "{name}: selector {k:?} not in template labels"
                );
            }
        }
        if let Some(sa) = spec.get("serviceAccountName").and_then(Value::as_str) {
            assert!(
                m.find("ServiceAccount", ns, sa).is_some(),
                "{name}: no ServiceAccount {sa}"
            );
        }
        let volumes: HashMap<&str, &Value> = seq(spec.get("volumes"))
            .into_iter()
            .map(|v| (str_at(v, &["name"]), v))
            .collect();
        let mut mounts: Vec<(String, bool)> = Vec::new();
        for c in seq(spec.get("containers")) {
            let cname = str_at(c, &["name"]);
            for vm in seq(c.get("volumeMounts")) {
                let vname = str_at(vm, &["name"]);
                assert!(
                    volumes.contains_key(vname),
                    "{name}/{cname}: mounts unknown volume {vname}"
                );
                if str_at(c, &["image"]).contains("ferrentd") {
                    let ro = vm.get("readOnly").and_then(Value::as_bool).unwrap_or(false);
                    mounts.push((str_at(vm, &["mountPath"]).to_string(), ro));
                }
            }
            let (pnames, pnums) = ports(c);
            for probe in ["livenessProbe", "readinessProbe"] {
                if let Some(port) = s(c, &[probe, "httpGet", "port"]) {
                    assert!(
                        port_ok(port, &pnames, &pnums),
                        "{name}/{cname}: {probe} port {port:?} is not a container port"
                    );
                }
            }
            if let Some(Value::String(p)) = s(
                w,
                &[
                    "spec",
                    "template",
                    "metadata",
                    "annotations",
                    "prometheus.io/port",
                ],
            ) {
                if str_at(c, &["image"]).contains("ferrentd") {
                    assert!(
                        pnums.contains(&p.parse::<u64>().unwrap()),
                        "{name}: scrape port {p} is not a container port"
                    );
                }
            }
        }
        // ConfigMap volumes: the map exists and has the keys; its config dry-runs and keeps its
        // state on a writable mount.
        for v in volumes.values() {
            let Some(cm) = s(v, &["configMap", "name"]).and_then(Value::as_str) else {
                continue;
            };
            let map = m
                .find("ConfigMap", ns, cm)
                .unwrap_or_else(|| panic!("{name}: no ConfigMap {cm}"));
            for item in seq(s(v, &["configMap", "items"])) {
                let key = str_at(item, &["key"]);
                let conf = s(map, &["data", key])
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("{name}: ConfigMap {cm} has no key {key}"));
                dry_run(conf, &format!("{cm}/{key}"));
                let mut state = conf_values(conf, "pos_file");
                state.extend(conf_values(conf, "root_dir"));
                for b in conf.split("<buffer").skip(1) {
                    if let Some(end) = b.find("</buffer>") {
                        state.extend(conf_values(&b[..end], "path"));
                    }
                }
                for p in state {
                    let ok = mounts
                        .iter()
                        .any(|(mp, ro)| !ro && Path::new(&p).starts_with(mp));
                    assert!(
                        ok,
                        "{name}: {p} (state of {cm}) is not on a writable mounted volume"
                    );
                }
                for host in conf_values(conf, "host") {
                    // host SERVICE.NAMESPACE.svc → a Service with a port the config names.
                    let parts: Vec<&str> = host.split('.').collect();
                    if parts.len() >= 3 && parts[2] == "svc" {
                        let svc = m.find("Service", parts[1], parts[0]).unwrap_or_else(|| {
                            panic!("{name}: forwards to {host}, no such Service")
                        });
                        let want: Vec<u64> = conf_values(conf, "port")
                            .iter()
                            .filter_map(|p| p.parse().ok())
                            .collect();
                        assert!(
                            seq(s(svc, &["spec", "ports"])).iter().any(|p| p
                                .get("port")
                                .and_then(Value::as_u64)
                                .is_some_and(|n| want.contains(&n))),
                            "{name}: no Service port of {host} matches {want:?}"
                        );
                    }
                }
            }
        }
        if str_at(w, &["kind"]) == "DaemonSet" {
            let env = seq(s(spec, &["containers"])
                .and_then(|c| c.get(0))
                .and_then(|c| c.get("env")));
            assert!(
                env.iter().any(|e| str_at(e, &["name"]) == "K8S_NODE_NAME"
                    && str_at(e, &["valueFrom", "fieldRef", "fieldPath"]) == "spec.nodeName"),
                "DaemonSet: K8S_NODE_NAME from the downward API"
            );
            let state = volumes
                .values()
                .find(|v| str_at(v, &["hostPath", "type"]) == "DirectoryOrCreate");
            assert!(state.is_some(), "DaemonSet: a hostPath state folder");
        }
    }
    // Services select a workload and target its named ports; the config listens there.
    for svc in m.of_kind("Service") {
        let ns = str_at(svc, &["metadata", "namespace"]);
        let Some(Value::Mapping(sel)) = s(svc, &["spec", "selector"]) else {
            panic!("Service without selector")
        };
        let target = workloads
            .iter()
            .find(|w| {
                str_at(w, &["metadata", "namespace"]) == ns
                    && sel.iter().all(|(k, v)| {
                        s(w, &["spec", "template", "metadata", "labels"]).and_then(|l| l.get(k))
                            == Some(v)
                    })
            })
            .unwrap_or_else(|| {
                panic!(
                    "Service {} selects nothing",
                    str_at(svc, &["metadata", "name"])
                )
            });
        let c = &seq(s(target, &["spec", "template", "spec", "containers"]))[0];
        let (names, numbers) = ports(c);
        for p in seq(s(svc, &["spec", "ports"])) {
            let tp = p.get("targetPort").unwrap();
            assert!(
                port_ok(tp, &names, &numbers),
                "Service targetPort {tp:?} is not a container port"
            );
        }
    }
    for b in m.of_kind("ClusterRoleBinding") {
        let role = str_at(b, &["roleRef", "name"]);
        assert!(
            m.find("ClusterRole", "", role).is_some(),
            "no ClusterRole {role}"
        );
        for sub in seq(b.get("subjects")) {
            assert!(m
                .find(
                    "ServiceAccount",
                    str_at(sub, &["namespace"]),
                    str_at(sub, &["name"])
                )
                .is_some());
        }
    }
}

fn dry_run(conf: &str, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("fluent.conf");
    std::fs::write(&p, conf).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrentd"))
        .args(["--dry-run", "-q", "-c", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: ferrentd --dry-run fails: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
