use std::collections::HashMap;

use super::*;

fn run(vars: &[(&str, &str)], stdin: &str) -> (Reply, Value) {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let reply = execute(|k| map.get(k).cloned(), stdin.as_bytes());
    let doc = serde_json::from_str(&reply.stdout).unwrap_or(Value::Null);
    (reply, doc)
}

const CONF: &str = r#"{"cniVersion":"1.0.0","name":"n","type":"sluice-cni","podCIDR":"10.9.0.0/24","dataDir":"/nonexistent-sluice"}"#;

#[test]
fn host_veth_names_are_stable_and_short() {
    let a = host_veth_name("abc", "eth0");
    assert_eq!(a, host_veth_name("abc", "eth0"));
    assert_ne!(a, host_veth_name("abc", "eth1"));
    assert_eq!(a.len(), 14);
    assert!(a.starts_with("lxc"));
}

#[test]
fn error_codes_for_bad_input() {
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, u64);
    let add = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/var/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
    ];
    let cases: Vec<Case> = vec![
        (vec![], CONF, 4),
        (vec![("CNI_COMMAND", "FROB")], CONF, 4),
        (add[..2].to_vec(), CONF, 4),
        (
            vec![
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "-bad"),
                ("CNI_NETNS", "/x"),
                ("CNI_IFNAME", "eth0"),
            ],
            CONF,
            4,
        ),
        (add.to_vec(), "{not json", 6),
        (
            add.to_vec(),
            r#"{"cniVersion":"9.9.9","name":"n","podCIDR":"10.9.0.0/24"}"#,
            1,
        ),
        (
            add.to_vec(),
            r#"{"cniVersion":"1.0.0","name":"n","podCIDR":"10.9.0.1/24"}"#,
            7,
        ),
        (
            add.to_vec(),
            r#"{"cniVersion":"1.0.0","name":"n","podCIDR":"nope"}"#,
            7,
        ),
        (add.to_vec(), r#"{"cniVersion":"1.0.0","name":"n"}"#, 7),
        (
            add.to_vec(),
            r#"{"cniVersion":"1.0.0","name":"../x","podCIDR":"10.9.0.0/24"}"#,
            7,
        ),
        (
            add.to_vec(),
            r#"{"cniVersion":"1.0.0","name":"n","podCIDR":"10.9.0.0/24","mtu":"x"}"#,
            7,
        ),
        (add.to_vec(), "[]", 7),
        (add.to_vec(), CONF, 3),
    ];
    for (vars, stdin, code) in cases {
        let (reply, doc) = run(&vars, stdin);
        assert_eq!(reply.exit_code, 1, "{vars:?} {stdin}");
        assert_eq!(doc["code"], code, "{vars:?} {stdin}: {doc}");
        assert!(doc["msg"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(doc["cniVersion"].is_string());
    }
}

#[test]
fn version_and_version_gates() {
    let (reply, doc) = run(&[("CNI_COMMAND", "VERSION")], "");
    assert_eq!(reply.exit_code, 0);
    assert_eq!(doc["supportedVersions"].as_array().unwrap().len(), 5);
    let old = r#"{"cniVersion":"1.0.0","name":"n","podCIDR":"10.9.0.0/24","cni.dev/valid-attachments":[]}"#;
    let (_, doc) = run(&[("CNI_COMMAND", "GC")], old);
    assert_eq!(doc["code"], 1);
    let (_, doc) = run(&[("CNI_COMMAND", "STATUS")], old);
    assert_eq!(doc["code"], 1);
}

#[test]
fn legacy_results_carry_ip_version() {
    let r = CniResult {
        ips: vec![IpConfig {
            address: "10.0.0.2/32".into(),
            ..IpConfig::default()
        }],
        ..CniResult::default()
    };
    assert_eq!(
        r.clone().for_version("0.3.1").ips[0].version.as_deref(),
        Some("4")
    );
    assert_eq!(r.for_version("1.0.0").ips[0].version, None);
}

#[test]
fn the_rendered_config_is_what_the_plugin_accepts() {
    let net = Network {
        mtu: Some(1400),
        ..Network::new(
            parse_pod_cidr("10.9.0.0/24").unwrap(),
            Path::new("/var/lib/x"),
        )
    };
    let list = net.conflist();
    assert_eq!(list["cniVersion"], "1.0.0");
    assert_eq!(list["name"], NETWORK_NAME);
    assert_eq!(list["plugins"][0]["type"], "sluice-cni");
    assert_eq!(list["plugins"][1]["type"], "loopback");
    let conf = config::parse(net.plugin_config().to_string().as_bytes()).unwrap();
    assert_eq!(conf.pod_cidr.to_string(), "10.9.0.0/24");
    assert_eq!(conf.name, NETWORK_NAME);
    assert_eq!(conf.cni_version, "1.0.0");
    assert_eq!(conf.mtu, 1400);
    assert_eq!(conf.data_dir, Path::new("/var/lib/x"));
    assert_eq!(conf.gateway, Ipv4Addr::new(10, 9, 0, 1));
    // The plugin's podCIDR policy: a network, at most a /30.
    assert!(parse_pod_cidr("10.9.0.0/30").is_ok());
    assert!(parse_pod_cidr("10.9.0.0/31").is_err());
    assert!(parse_pod_cidr("10.9.0.1/24").is_err());
}
