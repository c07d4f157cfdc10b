//! Section kind 1, `identity` (FORMAT.md §8.1): the frozen `IdentityV1` and its `HostV1`,
//! version 1, and their model conversions.

use serde::{Deserialize, Serialize};

use crate::model;

/// Identity section, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityV1 {
    /// Tool version.
    pub tool_version: String,
    /// Creation time, ns since the epoch.
    pub created_ns: u64,
    /// Host.
    pub host: HostV1,
    /// Capturing uid.
    pub capture_uid: u32,
    /// Capturing gid.
    pub capture_gid: u32,
    /// Capture command line.
    pub capture_cmdline: Vec<String>,
}

/// Host record, version 1 (see [`model::Host`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct HostV1 {
    pub kernel_release: String,
    pub machine: String,
    pub hostname: String,
    pub cpu_vendor: String,
    pub cpu_model: String,
    pub cpu_flags: Vec<String>,
    pub xsave_features: u64,
    pub xsave_size: u32,
}

impl From<&model::Identity> for IdentityV1 {
    fn from(m: &model::Identity) -> Self {
        let h = &m.host;
        IdentityV1 {
            tool_version: m.tool_version.clone(),
            created_ns: m.created_ns,
            host: HostV1 {
                kernel_release: h.kernel_release.clone(),
                machine: h.machine.clone(),
                hostname: h.hostname.clone(),
                cpu_vendor: h.cpu_vendor.clone(),
                cpu_model: h.cpu_model.clone(),
                cpu_flags: h.cpu_flags.clone(),
                xsave_features: h.xsave_features,
                xsave_size: h.xsave_size,
            },
            capture_uid: m.capture_uid,
            capture_gid: m.capture_gid,
            capture_cmdline: m.capture_cmdline.clone(),
        }
    }
}

impl From<IdentityV1> for model::Identity {
    fn from(v: IdentityV1) -> Self {
        let h = v.host;
        model::Identity {
            tool_version: v.tool_version,
            created_ns: v.created_ns,
            host: model::Host {
                kernel_release: h.kernel_release,
                machine: h.machine,
                hostname: h.hostname,
                cpu_vendor: h.cpu_vendor,
                cpu_model: h.cpu_model,
                cpu_flags: h.cpu_flags,
                xsave_features: h.xsave_features,
                xsave_size: h.xsave_size,
            },
            capture_uid: v.capture_uid,
            capture_gid: v.capture_gid,
            capture_cmdline: v.capture_cmdline,
        }
    }
}
