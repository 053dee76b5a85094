//! Authorization with a real polkitd: users granted by rules, users without
//! rules, users refused by rules, ownership of programs, and polkit gone.

use std::time::Duration;

use xdpd_tests::bus::TestBus;
use xdpd_tests::netns::VethPair;
use xdpd_tests::polkit::{uid, Polkit};

const RULES: &str = r#"
polkit.addRule(function(action, subject) {
    if (action.id.indexOf("org.xdp.manager1.") != 0)
        return polkit.Result.NOT_HANDLED;
    if (subject.user == "xdpd-carol")
        return polkit.Result.NO;
    if (subject.isInGroup("xdpd-admins"))
        return polkit.Result.YES;
    if (subject.user == "xdpd-alice" &&
        (action.id == "org.xdp.manager1.add-program" || action.id == "org.xdp.manager1.remove-program"))
        return polkit.Result.YES;
    // bob may add to veth-b only: the details reach the rules.
    if (subject.user == "xdpd-bob" && action.lookup("interface") == "veth-b" &&
        (action.id == "org.xdp.manager1.add-program" || action.id == "org.xdp.manager1.remove-program"))
        return polkit.Result.YES;
    // dave may add (only add) programs tagged "imply": removing and replacing
    // his own follow from org.freedesktop.policykit.imply in the .policy file.
    if (subject.user == "xdpd-dave" && action.id == "org.xdp.manager1.add-program" &&
        action.lookup("tag") == "imply")
        return polkit.Result.YES;
    return polkit.Result.NOT_HANDLED;
});
"#;

struct Fixture {
    polkit: Polkit,
    bus: TestBus,
    pair: VethPair,
    link: String,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let pair = VethPair::new();
        let bus = TestBus::start(name, &pair.ns_b, 0);
        let polkit = Polkit::start(&bus, RULES);
        let link = format!("/org/xdp/Manager1/link/{}", VethPair::ifindex(&pair.ns_b, &pair.dev_b));
        Fixture { polkit, bus, pair, link }
    }

    /// busctl as `user` (None: root), non-interactive unless asked.
    fn call(&self, user: Option<&str>, interactive: bool, args: &[&str]) -> Result<String, String> {
        let flag = format!("--allow-interactive-authorization={}", if interactive { "yes" } else { "no" });
        let mut all = vec![flag.as_str(), "call", "org.xdp.Manager1"];
        all.extend_from_slice(args);
        let (ok, out, err) = self.bus.busctl_as(user.map(uid), &all);
        if ok {
            Ok(out)
        } else {
            Err(err)
        }
    }

    fn add(&self, user: Option<&str>, program: &str) -> Result<String, String> {
        let object = xdpd_bpf::object_path("basic").display().to_string();
        self.call(
            user,
            false,
            &[&self.link, "org.xdp.Manager1.Link", "AddProgramFromPath", "ssa{sv}", &object, program, "0"],
        )
        .map(|out| out.trim().trim_start_matches("o ").trim_matches('"').to_string())
    }

    fn remove(&self, user: Option<&str>, program: &str) -> Result<String, String> {
        self.call(user, false, &[program, "org.xdp.Manager1.Program", "Remove"])
    }

    fn property(&self, object: &str, iface: &str, name: &str) -> String {
        let (ok, out, err) = self.bus.busctl(&["get-property", "org.xdp.Manager1", object, iface, name]);
        assert!(ok, "{err}");
        out.trim().to_string()
    }

    /// (Generation, Programs) of the link.
    fn chain(&self) -> (String, String) {
        (
            self.property(&self.link, "org.xdp.Manager1.Link", "Generation"),
            self.property(&self.link, "org.xdp.Manager1.Link", "Programs"),
        )
    }
}

fn assert_denied(result: Result<String, String>, what: &str) {
    let err = result.expect_err(what);
    assert!(err.contains("not allowed") || err.contains("Access denied"), "{what}: {err}");
}

fn assert_needs_interaction(result: Result<String, String>, what: &str) {
    let err = result.expect_err(what);
    assert!(err.contains("needs authentication") || err.contains("nteractive"), "{what}: {err}");
}

#[test]
fn users_granted_by_rules_add_and_remove_their_programs() {
    let f = Fixture::new("pk-grant");
    let alice = Some("xdpd-alice");
    let program = f.add(alice, "xdp_pass").expect("alice may add");
    assert_eq!(f.property(&program, "org.xdp.Manager1.Program", "Owner"), format!("u {}", uid("xdpd-alice")));
    assert_eq!(f.chain().0, "t 1");
    f.remove(alice, &program).expect("alice may remove her own program");
    assert_eq!(f.chain().0, "t 2");
    // Rules see the details: bob may add to veth-b.
    let p = f.add(Some("xdpd-bob"), "xdp_pass").expect("bob may add to veth-b");
    f.remove(Some("xdpd-bob"), &p).unwrap();
}

#[test]
fn users_without_a_rule_need_interaction_and_refused_users_are_denied() {
    let f = Fixture::new("pk-deny");
    let before = f.chain();
    assert_needs_interaction(f.add(Some("xdpd-dave"), "xdp_pass"), "dave has no rule");
    assert_denied(f.add(Some("xdpd-carol"), "xdp_pass"), "carol's rule says no");
    // Allowing interaction does not help without an agent: denied, not stuck.
    let object = xdpd_bpf::object_path("basic").display().to_string();
    let err = f
        .call(
            Some("xdpd-dave"),
            true,
            &[&f.link, "org.xdp.Manager1.Link", "AddProgramFromPath", "ssa{sv}", &object, "xdp_pass", "0"],
        )
        .unwrap_err();
    assert!(!err.is_empty());
    // Taking over or choosing a mode needs manage, which alice lacks.
    let args = [
        &f.link as &str,
        "org.xdp.Manager1.Link",
        "AddProgramFromPath",
        "ssa{sv}",
        &object,
        "xdp_pass",
        "1",
        "mode",
        "s",
        "generic",
    ];
    assert_needs_interaction(f.call(Some("xdpd-alice"), false, &args), "mode needs manage");
    assert_eq!(f.chain(), before, "denied calls changed the chain");
}

/// Replacing is adding and removing one's own: whoever may add may replace,
/// asked once (add-program implies remove-program in the .policy file).
#[test]
fn adding_implies_removing_ones_own_so_replace_asks_once() {
    let f = Fixture::new("pk-imply");
    let object = xdpd_bpf::object_path("basic").display().to_string();
    let dave = Some("xdpd-dave");
    let add = |replace: &str| {
        let args = [
            &f.link as &str,
            "org.xdp.Manager1.Link",
            "AddProgramFromPath",
            "ssa{sv}",
            &object,
            "xdp_pass",
            "2",
            "tag",
            "s",
            "imply",
            "replace",
            "b",
            replace,
        ];
        f.call(dave, false, &args).map(|out| out.trim().trim_start_matches("o ").trim_matches('"').to_string())
    };
    let first = add("false").expect("dave may add with the tag imply");
    let second = add("true").expect("and replace it: removing his own is implied");
    assert_ne!(first, second);
    assert_eq!(f.chain().1, format!("ao 1 \"{second}\""));
    f.remove(dave, &second).expect("removing his own is implied");
    // Someone else's program still needs manage, which adding does not imply.
    let roots = f.add(None, "xdp_pass").expect("root always may");
    assert_needs_interaction(f.remove(dave, &roots), "dave removing root's program needs manage");
}

#[test]
fn owners_admins_and_root() {
    let f = Fixture::new("pk-owner");
    let bobs = f.add(Some("xdpd-bob"), "xdp_pass").unwrap();
    let before = f.chain();
    assert_needs_interaction(f.remove(Some("xdpd-alice"), &bobs), "alice removing bob's program needs manage");
    assert_denied(f.remove(Some("xdpd-carol"), &bobs), "carol");
    // Through ChangeChain, a removal is authorized exactly as Remove is.
    let id = bobs.rsplit('/').next().unwrap();
    let change = |user| {
        let args = [f.link.as_str(), "org.xdp.Manager1.Link", "ChangeChain", "a(hsa{sv})ata{sv}", "0", "1", id, "0"];
        f.call(user, false, &args)
    };
    assert_needs_interaction(change(Some("xdpd-alice")), "alice removing bob's program in a change needs manage");
    assert_denied(change(Some("xdpd-carol")), "carol's change");
    assert_eq!(f.chain(), before);
    // Getting the maps of another user's program needs manage too.
    let err = f.call(Some("xdpd-alice"), false, &[&bobs, "org.xdp.Manager1.Program", "GetMaps"]).unwrap_err();
    assert!(err.contains("needs authentication"), "{err}");
    f.remove(Some("xdpd-admin"), &bobs).expect("an admin may remove anyone's program");
    let roots = f.add(None, "xdp_pass").expect("root always may");
    f.remove(None, &roots).expect("root always may");
}

#[test]
fn without_polkit_non_root_callers_are_denied_and_the_service_stays_up() {
    let mut f = Fixture::new("pk-gone");
    let p = f.add(Some("xdpd-alice"), "xdp_pass").unwrap();
    f.polkit.stop();
    std::thread::sleep(Duration::from_millis(200));
    let before = f.chain();
    assert_denied(f.add(Some("xdpd-alice"), "xdp_pass"), "no polkit");
    assert_denied(f.remove(Some("xdpd-alice"), &p), "no polkit");
    assert!(f.bus.log().contains("polkit cannot be reached, denying"), "clearly logged:\n{}", f.bus.log());
    assert_eq!(f.chain(), before);
    assert!(f.bus.service_pid().is_some(), "the service is still up");
    f.remove(None, &p).expect("root needs no polkit");
    let _ = &f.pair;
}
