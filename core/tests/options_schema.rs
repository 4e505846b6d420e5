//! Every option is named once in core (`Options::SCHEMA`), and each binding offers what
//! the schema says it does: a new `Options` field without a schema entry, a schema entry
//! whose C setter, C++ method or Python keyword is missing, or a C setter the schema does
//! not know, fails here.

use std::collections::BTreeSet;

use tradeauth::Options;

fn read(relative: &str) -> String {
    let path = format!("{}/../{relative}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

#[test]
fn the_schema_lists_every_field_in_order() {
    // Exhaustive: a new field is a compile error here until it is listed.
    let Options {
        base_url: _,
        extra_root_certs_pem: _,
        request_timeout: _,
        connect_timeout: _,
        auth_timeout: _,
        max_retries: _,
        retry_base_delay: _,
        retry_max_delay: _,
        background_refresh: _,
        refresh_window: _,
        max_date_skew: _,
        max_lifetime: _,
        store: _,
        store_key: _,
        store_plaintext: _,
        store_lease_ttl: _,
        store_timeout: _,
        store_prefix: _,
        store_ca_pem: _,
        private_pool: _,
    } = Options::new();
    let fields = [
        "base_url",
        "extra_root_certs_pem",
        "request_timeout",
        "connect_timeout",
        "auth_timeout",
        "max_retries",
        "retry_base_delay",
        "retry_max_delay",
        "background_refresh",
        "refresh_window",
        "max_date_skew",
        "max_lifetime",
        "store",
        "store_key",
        "store_plaintext",
        "store_lease_ttl",
        "store_timeout",
        "store_prefix",
        "store_ca_pem",
        "private_pool",
    ];
    let schema: Vec<&str> = Options::SCHEMA.iter().map(|s| s.field).collect();
    assert_eq!(schema, fields);
}

#[test]
fn each_binding_offers_what_the_schema_says() {
    let header = read("include/tradeauth.h");
    let cpp = read("include/tradeauth.hpp");
    let pyi = read("python/tradeauth/_native.pyi");
    let python = read("python/src/client.rs");
    let mut missing = Vec::new();
    for spec in Options::SCHEMA {
        if let Some(c) = spec.c
            && !header.contains(&format!("{c}("))
        {
            missing.push(format!("{}: C {c}", spec.field));
        }
        if let Some(m) = spec.cpp
            && !cpp.contains(&format!("Options &{m}("))
        {
            missing.push(format!("{}: C++ Options::{m}", spec.field));
        }
        if let Some(k) = spec.python
            && k == "base_url"
        {
            // The one option every constructor takes as a parameter of its own.
            if !pyi.contains("        base_url: str") {
                missing.push(format!("{}: Python parameter {k}", spec.field));
            }
        } else if let Some(k) = spec.python {
            // A field of the stubs' options TypedDicts, and an arm of the native
            // `OptionArgs` extraction.
            if !pyi.contains(&format!("\n    {k}: Optional[")) {
                missing.push(format!("{}: Python stub keyword {k}", spec.field));
            }
            if !python.contains(&format!("\"{k}\" =>")) {
                missing.push(format!("{}: Python OptionArgs keyword {k}", spec.field));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "named in the schema, missing: {missing:#?}"
    );
}

#[test]
fn every_c_option_function_is_in_the_schema() {
    let header = read("include/tradeauth.h");
    let known: BTreeSet<&str> = Options::SCHEMA.iter().filter_map(|s| s.c).collect();
    // Not setters of one field: the handle's life, and a second way to add roots.
    let other = [
        "tradeauth_options_new",
        "tradeauth_options_free",
        "tradeauth_options_add_root_file",
    ];
    let mut unknown = BTreeSet::new();
    for (at, _) in header.match_indices("tradeauth_options_") {
        let name: String = header[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let is_function = header[at + name.len()..].starts_with('(');
        if is_function && !known.contains(name.as_str()) && !other.contains(&name.as_str()) {
            unknown.insert(name);
        }
    }
    assert!(
        unknown.is_empty(),
        "C functions the schema does not name: {unknown:?}"
    );
}

/// Every option is offered by every binding (issue #13): a new field needs a C setter, a
/// C++ method and a Python keyword before this passes.
#[test]
fn every_binding_offers_every_option() {
    let gaps = |pick: fn(&tradeauth::OptionSpec) -> Option<&'static str>| -> Vec<&str> {
        Options::SCHEMA
            .iter()
            .filter(|s| pick(s).is_none())
            .map(|s| s.field)
            .collect()
    };
    let none = Vec::<&str>::new();
    assert_eq!(gaps(|s| s.c), none);
    assert_eq!(gaps(|s| s.cpp), none);
    assert_eq!(gaps(|s| s.python), none);
}
