//! Eventfds: the counter and `EFD_SEMAPHORE`, from the fd's `/proc/PID/fdinfo/N`
//! (`eventfd-count` in hex, `eventfd-semaphore`); `O_NONBLOCK` is in the fd's flags. Model:
//! [`FdKind::EventFd`] in `psnc_format::model`.

use psnc_format::model::FdKind;

use crate::procfs::FdInfo;

/// The [`FdKind::EventFd`] of an fd whose fdinfo is `info`; the error quotes what is missing.
pub(super) fn classify(info: &FdInfo) -> Result<FdKind, String> {
    let get = |k: &str| {
        info.extra
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| format!("no {k} line (the kernel is older than 6.6?)"))
    };
    let c = get("eventfd-count")?;
    let count = u64::from_str_radix(c, 16).map_err(|_| format!("bad eventfd-count {c:?}"))?;
    let s = get("eventfd-semaphore")?;
    let semaphore = match s {
        "0" => false,
        "1" => true,
        _ => return Err(format!("bad eventfd-semaphore {s:?}")),
    };
    Ok(FdKind::EventFd { count, semaphore })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::parse_fdinfo;

    #[test]
    fn eventfd_fdinfo() {
        let text = "pos:\t0\nflags:\t04002\nmnt_id:\t17\nino:\t18\n\
                    eventfd-count:               1f\neventfd-id: 1\neventfd-semaphore: 1\n";
        assert_eq!(
            classify(&parse_fdinfo(text).unwrap()),
            Ok(FdKind::EventFd {
                count: 0x1f,
                semaphore: true
            })
        );
        let old = "pos:\t0\nflags:\t02\nmnt_id:\t17\neventfd-count: 0\n";
        assert!(classify(&parse_fdinfo(old).unwrap())
            .unwrap_err()
            .contains("eventfd-semaphore"));
    }
}
