//! Signalfds: the signal mask, from `sigmask` (hex) in the fd's `/proc/PID/fdinfo/N`;
//! `O_NONBLOCK` is in the fd's flags. Model: [`FdKind::SignalFd`] in `psnc_format::model`.

use psnc_format::model::FdKind;

use crate::procfs::FdInfo;

/// The [`FdKind::SignalFd`] of an fd whose fdinfo is `info`; the error quotes what is wrong.
pub(super) fn classify(info: &FdInfo) -> Result<FdKind, String> {
    let v = info
        .extra
        .iter()
        .find(|(k, _)| k == "sigmask")
        .map(|(_, v)| v.as_str())
        .ok_or("no sigmask line")?;
    let mask = u64::from_str_radix(v, 16).map_err(|_| format!("bad sigmask {v:?}"))?;
    Ok(FdKind::SignalFd { mask })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::parse_fdinfo;

    #[test]
    fn signalfd_fdinfo() {
        let text = "pos:\t0\nflags:\t04002\nmnt_id:\t17\nino:\t18\nsigmask:\t0000000800000200\n";
        assert_eq!(
            classify(&parse_fdinfo(text).unwrap()),
            Ok(FdKind::SignalFd {
                mask: 0x8_0000_0200
            })
        );
        assert!(classify(&parse_fdinfo("pos: 0\nflags: 2\n").unwrap()).is_err());
    }
}
