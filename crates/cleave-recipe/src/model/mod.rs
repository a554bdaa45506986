//! The rendered recipe: what the build engine consumes.
//!
//! Every type here is fully rendered (no templates, no selectors) and already
//! validated, so a consumer never re-checks match specs, globs or URLs.

mod about;
mod build;
mod output;
mod pin;
mod post_process;
mod python;
mod requirements;
mod script;
mod source;
mod test;

pub use about::About;
pub(crate) use build::{BUILD_KEYS, is_no_noarch, reject_unsupported as reject_unsupported_build};
pub use build::{
    Build, DynamicLinking, FileSelection, LinkingBehavior, NoArch, PrefixDetection, VariantKeys,
};
pub use output::{Inherit, PackageOutput, RenderedOutput, StagingCache, StagingRequirements};
pub use pin::Pin;
pub(crate) use pin::{PIN_COMPATIBLE_MARK, PIN_SUBPACKAGE_MARK, PinArgs, pin_spec_for};
pub use post_process::PostProcess;
pub use python::PythonSettings;
pub use requirements::{Dependency, IgnoreRunExports, Requirements, RunExports};
pub(crate) use requirements::{
    REQUIREMENT_KEYS, dependencies as read_dependencies, package_name as read_package_name,
    read_ignore_run_exports, reject_extras,
};
pub use script::{Script, ScriptContent};
pub use source::{GitReference, Source};
pub use test::{PackageContents, Test, TestFiles, TestRequirements};
