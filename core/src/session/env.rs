//! Environment variables the `*_from_env` constructors read (the pages recommend them).
//!
//! Every variable `NAME` may instead be given as `NAME_FILE`, the path of a file holding
//! the value (the Docker / Kubernetes secrets convention), so a secret need not sit in
//! the environment. One trailing newline (`\n` or `\r\n`) is stripped; setting both
//! forms is an error.

use super::Options;
use crate::error::{Error, ErrorKind, Result};

/// A required variable; the message names it (and its `_FILE` form) but never prints
/// its value.
pub(crate) fn required(name: &str) -> Result<String> {
    optional(name)?.ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "environment variable {name} (or {name}_FILE) is not set (or is empty / not \
                 UTF-8)"
            ),
        )
    })
}

/// An optional variable, from `NAME` or the file `NAME_FILE` names; empty counts as
/// unset. Both set, or an unreadable file, is an error naming them, never the value.
pub(crate) fn optional(name: &str) -> Result<Option<String>> {
    let direct = std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let file_var = format!("{name}_FILE");
    let path = std::env::var_os(&file_var).filter(|p| !p.is_empty());
    match (direct, path) {
        (Some(_), Some(_)) => Err(Error::invalid_argument(format!(
            "both {name} and {file_var} are set; set one"
        ))),
        (direct, None) => Ok(direct),
        (None, Some(path)) => read_value_file(&file_var, std::path::Path::new(&path)).map(Some),
    }
}

/// The value in the file `path` (named by `var`), less one trailing newline.
fn read_value_file(var: &str, path: &std::path::Path) -> Result<String> {
    let shown = path.display();
    let bytes = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| {
        Error::invalid_argument(format!("{var}: cannot read {shown} ({})", e.kind()))
    })?);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::invalid_argument(format!("{var}: {shown} is not UTF-8 text")))?;
    let value = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(text);
    if value.trim().is_empty() {
        return Err(Error::invalid_argument(format!("{var}: {shown} is empty")));
    }
    Ok(value.to_owned())
}

/// Applies `<VENUE>_BASE_URL` and `TRADEAUTH_CA_CERT` unless the options already say.
pub(crate) fn apply_base_url(mut options: Options, name: &str) -> Result<Options> {
    if options.base_url.is_none() {
        options.base_url = optional(name)?;
    }
    options.with_env_roots()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_file_loses_one_trailing_newline_only() {
        let dir = std::env::temp_dir().join(format!("tradeauth-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for (content, want) in [
            ("s3cret\n", "s3cret"),
            ("s3cret\r\n", "s3cret"),
            ("s3cret", "s3cret"),
            ("s3cret\n\n", "s3cret\n"),
            (" s3cret ", " s3cret "),
        ] {
            let path = dir.join("value");
            std::fs::write(&path, content).expect("write");
            assert_eq!(read_value_file("X_FILE", &path).expect("reads"), want);
        }
        for bad in ["", "\n", "  \n"] {
            let path = dir.join("value");
            std::fs::write(&path, bad).expect("write");
            let e = read_value_file("X_FILE", &path).expect_err("empty");
            assert!(e.message().contains("is empty"), "{e}");
        }
        std::fs::write(dir.join("bin"), [0xff, 0xfe]).expect("write");
        let e = read_value_file("X_FILE", &dir.join("bin")).expect_err("binary");
        assert!(e.message().contains("not UTF-8"), "{e}");
        let e = read_value_file("X_FILE", &dir.join("missing")).expect_err("missing");
        assert!(e.message().contains("X_FILE: cannot read"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
