//! Names Kargo generates: Freight IDs (SHA-1 of the artifacts), Freight aliases
//! (adjective-animal monikers), Promotion names (`<stage>.<ulid>.<freight7>`), short labels.

use serde_json::Value;
use sha1::{Digest as _, Sha1};
use sha2::Sha256;

use super::urls;
use super::util::str_at;

/// The canonical `Kind/name` key of a Freight origin.
pub fn origin_key(origin: &Value) -> String {
    format!("{}/{}", str_at(origin, "kind"), str_at(origin, "name"))
}

/// One hash part per artifact, as `GenerateFreightID` builds them.
pub fn freight_hash_parts(freight: &Value) -> Vec<String> {
    let mut parts = Vec::new();
    for c in super::util::arr_at(freight, "commits") {
        let repo = urls::normalize_git(str_at(c, "repoURL"));
        let tag = str_at(c, "tag");
        let id = str_at(c, "id");
        parts.push(if tag.is_empty() {
            format!("{repo}:{id}")
        } else {
            format!("{repo}:{tag}:{id}")
        });
    }
    for i in super::util::arr_at(freight, "images") {
        parts.push(format!(
            "{}:{}@{}",
            str_at(i, "repoURL"),
            str_at(i, "tag"),
            str_at(i, "digest")
        ));
    }
    for c in super::util::arr_at(freight, "charts") {
        let repo = urls::join_path(&[
            &urls::normalize_chart(str_at(c, "repoURL")),
            str_at(c, "name"),
        ]);
        parts.push(format!("{repo}:{}", str_at(c, "version")));
    }
    for a in super::util::arr_at(freight, "artifacts") {
        parts.push(format!(
            "{}:{}:{}",
            str_at(a, "artifactType"),
            str_at(a, "subscriptionName"),
            str_at(a, "version")
        ));
    }
    parts
}

/// Kargo's Freight ID: SHA-1 hex of `"<Kind>/<warehouse>:" + sorted(parts).join("|")`.
pub fn freight_id(freight: &Value) -> String {
    let mut parts = freight_hash_parts(freight);
    parts.sort();
    let origin = freight
        .get("origin")
        .map(origin_key)
        .unwrap_or_else(|| "/".to_string());
    let input = format!("{origin}:{}", parts.join("|"));
    hex(&Sha1::digest(input.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(input: &[u8]) -> String {
    hex(&Sha256::digest(input))
}

/// Kargo's `HashShorten`: keep a prefix and append `-<8 hex of sha256>` so the result fits.
pub fn hash_shorten(s: &str, max_len: usize) -> String {
    const HASH_LEN: usize = 8;
    if s.len() <= max_len {
        return s.to_string();
    }
    let short = &sha256_hex(s.as_bytes())[..HASH_LEN];
    let keep = max_len - (HASH_LEN + 1);
    let mut end = keep;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{short}", s[..end].trim_end_matches('-'))
}

/// Label values are limited to 63 characters.
pub fn shorten_label_value(s: &str) -> String {
    hash_shorten(s, 63)
}

const PROMOTION_SHORT_HASH: usize = 7;
const ULID_LEN: usize = 26;
const MAX_STAGE_PREFIX: usize = 253 - 1 - ULID_LEN - 1 - PROMOTION_SHORT_HASH;

/// `<stage>.<ulid>.<first 7 of freight>`, lower-cased, with the stage prefix cut so the
/// whole name stays within 253 characters.
pub fn promotion_name(stage: &str, ulid: &str, freight: &str) -> String {
    let short_hash: String = freight.chars().take(PROMOTION_SHORT_HASH).collect();
    let prefix: String = stage.chars().take(MAX_STAGE_PREFIX).collect();
    format!("{prefix}.{ulid}.{short_hash}").to_lowercase()
}

const ADJECTIVES: &[&str] = &[
    "agile",
    "amber",
    "ancient",
    "autumn",
    "bold",
    "brave",
    "breezy",
    "bright",
    "calm",
    "clever",
    "cosmic",
    "crimson",
    "curious",
    "daring",
    "dusty",
    "eager",
    "early",
    "electric",
    "emerald",
    "fancy",
    "fearless",
    "fierce",
    "flying",
    "frosty",
    "gentle",
    "giant",
    "gilded",
    "golden",
    "graceful",
    "happy",
    "hidden",
    "honest",
    "humble",
    "icy",
    "jolly",
    "keen",
    "kind",
    "lively",
    "lucky",
    "lunar",
    "mellow",
    "mighty",
    "misty",
    "modest",
    "noble",
    "nimble",
    "olive",
    "patient",
    "polar",
    "proud",
    "quick",
    "quiet",
    "rapid",
    "rustic",
    "sandy",
    "scarlet",
    "serene",
    "shiny",
    "silent",
    "silver",
    "sleepy",
    "smooth",
    "snowy",
    "solar",
    "sparkling",
    "steady",
    "stormy",
    "sunny",
    "swift",
    "tidy",
    "tranquil",
    "velvet",
    "vivid",
    "wandering",
    "warm",
    "wild",
    "wise",
    "witty",
    "young",
    "zesty",
];

const ANIMALS: &[&str] = &[
    "albatross",
    "alpaca",
    "antelope",
    "badger",
    "beaver",
    "bison",
    "bobcat",
    "buffalo",
    "camel",
    "caribou",
    "cheetah",
    "chipmunk",
    "cobra",
    "condor",
    "cougar",
    "coyote",
    "crane",
    "dingo",
    "dolphin",
    "eagle",
    "elk",
    "falcon",
    "ferret",
    "finch",
    "flamingo",
    "fox",
    "gazelle",
    "gecko",
    "gibbon",
    "giraffe",
    "gopher",
    "hare",
    "hawk",
    "hedgehog",
    "heron",
    "ibex",
    "iguana",
    "jackal",
    "jaguar",
    "kestrel",
    "koala",
    "lemur",
    "leopard",
    "llama",
    "lynx",
    "magpie",
    "marmot",
    "meerkat",
    "mongoose",
    "moose",
    "narwhal",
    "newt",
    "ocelot",
    "octopus",
    "orca",
    "osprey",
    "otter",
    "owl",
    "panda",
    "panther",
    "pelican",
    "penguin",
    "puffin",
    "quail",
    "rabbit",
    "raccoon",
    "raven",
    "reindeer",
    "salmon",
    "seal",
    "sparrow",
    "squirrel",
    "stork",
    "swan",
    "tapir",
    "tiger",
    "toucan",
    "turtle",
    "walrus",
    "weasel",
    "whale",
    "wolf",
    "wombat",
    "yak",
    "zebra",
];

/// The `attempt`-th adjective-animal moniker candidate for a seed. Deterministic so runs are
/// reproducible; callers retry with the next attempt until the alias is unused.
pub fn alias_candidate(seed: &str, attempt: u32) -> String {
    let digest = Sha256::digest(format!("{seed}#{attempt}").as_bytes());
    let a = usize::from(digest[0]) << 8 | usize::from(digest[1]);
    let b = usize::from(digest[2]) << 8 | usize::from(digest[3]);
    let base = format!(
        "{}-{}",
        ADJECTIVES[a % ADJECTIVES.len()],
        ANIMALS[b % ANIMALS.len()]
    );
    // After many collisions the word space is nearly exhausted; a suffix keeps it finite.
    if attempt >= 64 {
        format!("{base}-{attempt}")
    } else {
        base
    }
}

/// The first candidate alias for `seed` that `taken` does not report as used.
pub fn pick_alias(seed: &str, taken: impl Fn(&str) -> bool) -> String {
    let mut attempt = 0;
    loop {
        let alias = alias_candidate(seed, attempt);
        if !taken(&alias) {
            return alias;
        }
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashSet;

    fn sha1_hex(s: &str) -> String {
        // Independent reference: the formula from Kargo's docs applied by hand.
        let mut h = Sha1::new();
        h.update(s.as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn freight_id_single_image() {
        let f = json!({"origin": {"kind": "Warehouse", "name": "w"},
            "images": [{"repoURL": "ghcr.io/acme/app", "tag": "1.0.0", "digest": "sha256:abc"}]});
        assert_eq!(
            freight_id(&f),
            sha1_hex("Warehouse/w:ghcr.io/acme/app:1.0.0@sha256:abc")
        );
    }

    #[test]
    fn freight_id_sorts_parts_and_normalizes() {
        let f = json!({"origin": {"kind": "Warehouse", "name": "main"},
            "images": [{"repoURL": "nginx", "tag": "1.25", "digest": "sha256:1"}],
            "commits": [{"repoURL": "https://GitHub.com/acme/repo.git", "id": "deadbeef", "tag": "v1"}],
            "charts": [{"repoURL": "https://charts.acme.io", "name": "app", "version": "0.1.0"}]});
        let mut parts = [
            "nginx:1.25@sha256:1".to_string(),
            "https://github.com/acme/repo:v1:deadbeef".to_string(),
            "https:/charts.acme.io/app:0.1.0".to_string(),
        ];
        parts.sort();
        let expected = sha1_hex(&format!("Warehouse/main:{}", parts.join("|")));
        assert_eq!(freight_id(&f), expected);
        // Order of artifacts in the document does not matter.
        let g = json!({"origin": {"kind": "Warehouse", "name": "main"},
            "charts": f["charts"], "commits": f["commits"], "images": f["images"]});
        assert_eq!(freight_id(&g), expected);
    }

    #[test]
    fn freight_id_commit_without_tag_and_oci_chart() {
        let f = json!({"origin": {"kind": "Warehouse", "name": "w"},
            "commits": [{"repoURL": "https://github.com/a/b", "id": "c0ffee"}],
            "charts": [{"repoURL": "oci://ghcr.io/a/charts/app", "version": "1.2.3"}]});
        let mut parts = [
            "https://github.com/a/b:c0ffee".to_string(),
            "ghcr.io/a/charts/app:1.2.3".to_string(),
        ];
        parts.sort();
        assert_eq!(
            freight_id(&f),
            sha1_hex(&format!("Warehouse/w:{}", parts.join("|")))
        );
        let other_origin = json!({"origin": {"kind": "Warehouse", "name": "w2"}, "commits": f["commits"], "charts": f["charts"]});
        assert_ne!(freight_id(&f), freight_id(&other_origin));
    }

    #[test]
    fn promotion_names_follow_the_format() {
        let n = promotion_name("Dev", "01HZX3Q4ABCDEFGHJKMNPQRSTV", "abcdef0123456789");
        assert_eq!(n, "dev.01hzx3q4abcdefghjkmnpqrstv.abcdef0");
        let long = "s".repeat(300);
        let n = promotion_name(&long, "01HZX3Q4ABCDEFGHJKMNPQRSTV", "abcdef0123456789");
        assert_eq!(n.len(), 253);
        assert!(n.ends_with(".abcdef0"));
    }

    #[test]
    fn labels_are_shortened_with_a_hash() {
        assert_eq!(shorten_label_value("short"), "short");
        let long = "x".repeat(80);
        let s = shorten_label_value(&long);
        assert_eq!(s.len(), 63);
        assert_eq!(&s[55..], &sha256_hex(long.as_bytes())[..8]);
        assert_eq!(&s[54..55], "-");
    }

    #[test]
    fn aliases_are_monikers_and_unique() {
        let mut used = HashSet::new();
        for i in 0..500 {
            let alias = pick_alias(&format!("freight-{i}"), |a| used.contains(a));
            assert!(alias.contains('-'));
            assert!(used.insert(alias));
        }
        let a = alias_candidate("seed", 0);
        let (adj, animal) = a.split_once('-').unwrap();
        assert!(ADJECTIVES.contains(&adj) && ANIMALS.contains(&animal));
    }
}
