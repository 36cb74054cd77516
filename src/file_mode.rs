//! Who besides its owner may use a credential file or a data directory: the mode bits, or the
//! POSIX ACL when the file has one. systemd writes a credential as mode 0400 plus an ACL entry
//! for the service's user, which `stat` shows as 0440 (the group bits of a file with an ACL are
//! its mask); judged by the ACL, such a file is private.
//!
//! The ACL is read from the `system.posix_acl_access` extended attribute, in the kernel's
//! documented format (`include/uapi/linux/posix_acl_xattr.h`): a little-endian `u32` version
//! (2), then 8-byte entries `{ u16 tag, u16 perm, u32 id }`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

const ACL_XATTR: &str = "system.posix_acl_access";
const ACL_VERSION: u32 = 2;
const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;

/// Who other than the owner (and this process's own user) has any access to `path`, as a short
/// phrase ("group and others (mode 0644)"), or `None` when nobody has. Symlinks are followed.
pub fn foreign_access(path: &Path) -> std::io::Result<Option<String>> {
    let meta = std::fs::metadata(path)?;
    let mode = meta.mode() & 0o777;
    if let Some(acl) = read_acl(path) {
        return Ok(judge_acl(
            &acl,
            meta.uid(),
            nix::unistd::geteuid().as_raw(),
            mode,
        ));
    }
    let mut who = Vec::new();
    if mode & 0o070 != 0 {
        who.push("group");
    }
    if mode & 0o007 != 0 {
        who.push("others");
    }
    Ok((!who.is_empty()).then(|| format!("{} (mode {mode:04o})", who.join(" and "))))
}

/// The ACL entries of `path`, when it has an extended ACL (`None` also when the filesystem has
/// no ACLs or the attribute is malformed: the mode bits are then what counts).
fn read_acl(path: &Path) -> Option<Vec<(u16, u16, u32)>> {
    let mut buf = vec![0u8; 4 + 8 * 64];
    let n = rustix::fs::getxattr(path, ACL_XATTR, &mut buf[..]).ok()?;
    parse_acl(&buf[..n])
}

fn parse_acl(raw: &[u8]) -> Option<Vec<(u16, u16, u32)>> {
    let (version, entries) = raw.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*version) != ACL_VERSION || entries.len() % 8 != 0 {
        return None;
    }
    Some(
        entries
            .chunks_exact(8)
            .map(|e| {
                (
                    u16::from_le_bytes([e[0], e[1]]),
                    u16::from_le_bytes([e[2], e[3]]),
                    u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
                )
            })
            .collect(),
    )
}

/// Applies the ACL's mask as the kernel does: named users, the owning group and named groups
/// get at most the mask; other is not masked. Entries for the owner and for `me` are fine.
fn judge_acl(acl: &[(u16, u16, u32)], owner: u32, me: u32, mode: u32) -> Option<String> {
    let mask = acl
        .iter()
        .find(|(tag, _, _)| *tag == ACL_MASK)
        .map(|(_, perm, _)| *perm)
        .unwrap_or(0o7);
    let mut who = Vec::new();
    for &(tag, perm, id) in acl {
        let effective = match tag {
            ACL_USER | ACL_GROUP_OBJ | ACL_GROUP => perm & mask,
            ACL_OTHER => perm,
            ACL_USER_OBJ | ACL_MASK => 0,
            _ => perm,
        };
        if effective & 0o7 == 0 {
            continue;
        }
        match tag {
            ACL_USER if id == owner || id == me => {}
            ACL_USER => who.push(format!("user {id}")),
            ACL_GROUP_OBJ => who.push("the file's group".to_string()),
            ACL_GROUP => who.push(format!("group {id}")),
            ACL_OTHER => who.push("others".to_string()),
            _ => who.push(format!("ACL entry {tag:#x}")),
        }
    }
    (!who.is_empty()).then(|| format!("{} (mode {mode:04o} with an ACL)", who.join(", ")))
}

/// A one-line warning for a credential file others may read, or `None`.
pub fn credential_file_warning(path: &Path, what: &str) -> Option<String> {
    match foreign_access(path) {
        Ok(Some(who)) => Some(format!(
            "warning: {what} {} can be read by {who}: run `chmod 600 {}`",
            path.display(),
            path.display()
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut out = ACL_VERSION.to_le_bytes().to_vec();
        for (t, p, i) in entries {
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&p.to_le_bytes());
            out.extend_from_slice(&i.to_le_bytes());
        }
        out
    }

    const U: u32 = u32::MAX; // the "undefined id" of the non-named entries

    #[test]
    fn systemd_credential_acl_is_private() {
        // What systemd writes: owner r, user:<service uid>:r, group none, mask r, other none.
        let raw = acl(&[
            (ACL_USER_OBJ, 4, U),
            (ACL_USER, 4, 1000),
            (ACL_GROUP_OBJ, 0, U),
            (ACL_MASK, 4, U),
            (ACL_OTHER, 0, U),
        ]);
        let entries = parse_acl(&raw).unwrap();
        assert_eq!(judge_acl(&entries, 0, 1000, 0o440), None);
        // The same file seen by another user than the one named: that user is foreign.
        let who = judge_acl(&entries, 0, 1001, 0o440).unwrap();
        assert!(who.contains("user 1000"), "{who}");
    }

    #[test]
    fn acl_entries_are_judged_through_the_mask() {
        let raw = acl(&[
            (ACL_USER_OBJ, 6, U),
            (ACL_USER, 4, 42),
            (ACL_GROUP_OBJ, 4, U),
            (ACL_GROUP, 4, 7),
            (ACL_MASK, 0, U),
            (ACL_OTHER, 0, U),
        ]);
        assert_eq!(judge_acl(&parse_acl(&raw).unwrap(), 0, 0, 0o600), None);
        let raw = acl(&[
            (ACL_USER_OBJ, 6, U),
            (ACL_GROUP_OBJ, 0, U),
            (ACL_GROUP, 4, 7),
            (ACL_MASK, 4, U),
            (ACL_OTHER, 4, U),
        ]);
        let who = judge_acl(&parse_acl(&raw).unwrap(), 0, 0, 0o644).unwrap();
        assert!(who.contains("group 7") && who.contains("others"), "{who}");
        assert_eq!(parse_acl(&[1, 0, 0, 0]), None, "unknown version");
        assert_eq!(parse_acl(&[2, 0, 0, 0, 1]), None, "truncated entry");
    }

    #[test]
    fn mode_bits_without_an_acl() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(foreign_access(&f).unwrap(), None);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(foreign_access(&f).unwrap().unwrap(), "group (mode 0640)");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o604)).unwrap();
        assert_eq!(foreign_access(&f).unwrap().unwrap(), "others (mode 0604)");
    }
}
