//! The `${{ ... }}` template language and the names it can see.
//!
//! A [`Scope`] is the root context of one render of one output under one
//! (partial) variant assignment. It records every variant key the templates
//! read. When a template reads a variant key that has no value yet, the scope
//! notes it as [`Need::Key`] and the render is aborted; the renderer then tries
//! again once per value of that key. This is how an output ends up rendered
//! once per combination of exactly the keys it uses.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Object, Value};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior};
use rattler_conda_types::{Arch, ParseStrictness, Subdir, Version, VersionSpec};

use crate::error::{Problem, ProblemKind};
use crate::model::{PIN_COMPATIBLE_MARK, PIN_SUBPACKAGE_MARK, PinArgs};
use crate::source::SourceFile;
use crate::variant::VariantConfig;
use crate::yaml::{Node, NodeKind};

/// Why a render could not finish yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Need {
    /// A variant key without a value in the current assignment.
    Key(String),
    /// Another output that has to be rendered first.
    Output(String),
}

/// A rendered output another output can pin to.
#[derive(Debug, Clone)]
pub(crate) struct PinTarget {
    pub(crate) version: String,
    pub(crate) build_string: String,
    pub(crate) variant: BTreeMap<String, String>,
}

/// What every render of one recipe shares.
pub(crate) struct Shared {
    pub(crate) source: SourceFile,
    pub(crate) context: Vec<(String, Node)>,
    pub(crate) variants: VariantConfig,
    pub(crate) target: Subdir,
    pub(crate) build: Subdir,
    /// Names of the recipe's package outputs, for `pin_subpackage`.
    pub(crate) package_names: OnceLock<BTreeSet<String>>,
    /// Outputs rendered so far, by name.
    pub(crate) rendered: Mutex<HashMap<String, Vec<PinTarget>>>,
}

/// The root context of one render.
pub(crate) struct Scope {
    shared: Arc<Shared>,
    assignment: BTreeMap<String, String>,
    hash: Option<String>,
    self_name: Option<String>,
    state: Mutex<ScopeState>,
}

#[derive(Default)]
struct ScopeState {
    need: Option<Need>,
    undefined: Option<String>,
    hash_used: bool,
    context_cache: HashMap<String, Value>,
    /// While rendering context entry `i`, only entries before `i` are visible.
    context_limit: Vec<usize>,
    problems: Vec<Problem>,
}

const SCOPE_KEY: &str = "__cleave_scope";
const FUNCTIONS: &[&str] = &[
    "compiler",
    "cdt",
    "pin_subpackage",
    "pin_compatible",
    "match",
    "is_unix",
    "is_linux",
    "is_osx",
    "is_win",
];

/// The shared template environment: `${{ }}` syntax, strict undefined.
pub(crate) fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .variable_delimiters("${{", "}}")
            .block_delimiters("${%", "%}")
            .comment_delimiters("${#", "#}")
            .build()
            .unwrap_or_default();
        env.set_syntax(syntax);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        // Recipes call Python string methods: `version.split('.')[0]`.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("compiler", compiler);
        env.add_function("cdt", cdt);
        env.add_function("pin_subpackage", pin_subpackage);
        env.add_function("pin_compatible", pin_compatible);
        env.add_function("match", match_version);
        env.add_function("is_unix", |p: String| platform_test(&p, Subdir::is_unix));
        env.add_function("is_linux", |p: String| platform_test(&p, Subdir::is_linux));
        env.add_function("is_osx", |p: String| platform_test(&p, Subdir::is_osx));
        env.add_function("is_win", |p: String| platform_test(&p, Subdir::is_windows));
        env.add_filter("version_to_buildstring", version_to_buildstring);
        env
    })
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("assignment", &self.assignment)
            .finish_non_exhaustive()
    }
}

impl Scope {
    pub(crate) fn new(
        shared: Arc<Shared>,
        assignment: BTreeMap<String, String>,
        hash: Option<String>,
        self_name: Option<String>,
    ) -> Arc<Self> {
        Arc::new(Scope {
            shared,
            assignment,
            hash,
            self_name,
            state: Mutex::new(ScopeState::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, ScopeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the last render was missing, if anything.
    pub(crate) fn need(&self) -> Option<Need> {
        self.state().need.clone()
    }

    /// True once a context entry failed; later errors are its echoes.
    pub(crate) fn has_problems(&self) -> bool {
        !self.state().problems.is_empty()
    }

    pub(crate) fn hash_used(&self) -> bool {
        self.state().hash_used
    }

    /// Problems found while rendering context entries on demand.
    pub(crate) fn take_problems(&self) -> Vec<Problem> {
        std::mem::take(&mut self.state().problems)
    }

    fn set_need(&self, need: Need) -> Error {
        let mut state = self.state();
        if state.need.is_none() {
            state.need = Some(need);
        }
        Error::new(
            ErrorKind::InvalidOperation,
            "rendering needs more information",
        )
    }

    /// The name a failed lookup asked for, to name it in the error.
    pub(crate) fn take_undefined(&self) -> Option<String> {
        self.state().undefined.take()
    }

    /// Every name a template may refer to, for "did you mean" hints.
    pub(crate) fn known_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.shared.context.iter().map(|(k, _)| k.clone()).collect();
        names.extend(self.shared.variants.keys().map(String::from));
        names.extend(platform_names().iter().map(|s| s.to_string()));
        names.extend(FUNCTIONS.iter().map(|s| s.to_string()));
        names
    }

    /// The value of a variant key, `Ok(None)` if the config does not set it,
    /// and an error that aborts the render if it is set but not yet chosen.
    pub(crate) fn variant_value(&self, key: &str) -> Result<Option<String>, Error> {
        if !self.shared.variants.contains(key) {
            return Ok(None);
        }
        match self.assignment.get(key) {
            Some(value) => Ok(Some(value.clone())),
            None => Err(self.set_need(Need::Key(key.to_string()))),
        }
    }

    fn target(&self) -> Subdir {
        self.shared.target
    }

    fn from_state(state: &State) -> Result<Arc<Scope>, Error> {
        state
            .lookup(SCOPE_KEY)
            .and_then(|v| v.downcast_object::<Scope>())
            .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "no recipe scope"))
    }

    fn context_value(self: &Arc<Self>, index: usize) -> Option<Value> {
        let (name, node) = &self.shared.context[index];
        {
            let state = self.state();
            if state
                .context_limit
                .last()
                .is_some_and(|&limit| index >= limit)
            {
                return None;
            }
            if let Some(value) = state.context_cache.get(name) {
                return Some(value.clone());
            }
        }
        self.state().context_limit.push(index);
        let value = self.node_value(node);
        self.state().context_limit.pop();
        match value {
            Ok(value) => {
                self.state()
                    .context_cache
                    .insert(name.clone(), value.clone());
                Some(value)
            }
            Err(err) => {
                if self.need().is_none() {
                    let problem = template_problem(self, &self.shared.source, node, &err);
                    self.state().problems.push(problem);
                }
                Some(Value::UNDEFINED)
            }
        }
    }

    /// A context value: a template is rendered; a whole-expression template
    /// keeps its type (list, bool, number); plain `true`/`false`/integers are
    /// typed as YAML would.
    fn node_value(self: &Arc<Self>, node: &Node) -> Result<Value, Error> {
        match &node.kind {
            NodeKind::Scalar(s) if s.value.contains("${{") => {
                let ctx = Value::from_dyn_object(self.clone());
                match whole_expression(&s.value) {
                    Some(expr) => compile_expression(expr)?.eval(ctx),
                    None => environment().render_str(&s.value, ctx).map(Value::from),
                }
            }
            NodeKind::Scalar(s) if s.plain => Ok(coerce(&s.value)),
            NodeKind::Scalar(s) => Ok(Value::from(s.value.clone())),
            NodeKind::Seq(items) => items
                .iter()
                .map(|item| self.node_value(item))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::from),
            NodeKind::Map(entries) => entries
                .iter()
                .map(|(k, v)| Ok((k.name.clone(), self.node_value(v)?)))
                .collect::<Result<BTreeMap<_, _>, Error>>()
                .map(Value::from),
        }
    }

    fn platform_value(&self, key: &str) -> Option<Value> {
        platform_value(key, self.target(), self.shared.build)
    }
}

/// The value of a platform variable (`target_platform`, `unix`, `x86_64`,
/// ...) for a build on `build` targeting `target`.
pub(crate) fn platform_value(key: &str, target: Subdir, build: Subdir) -> Option<Value> {
    let arch = target.arch();
    let value = match key {
        "target_platform" | "host_platform" => Value::from(target.as_str()),
        "build_platform" => Value::from(build.as_str()),
        "unix" => Value::from(target.is_unix()),
        "linux" => Value::from(target.is_linux()),
        "osx" => Value::from(target.is_osx()),
        "win" => Value::from(target.is_windows()),
        "emscripten" => Value::from(target.as_str().starts_with("emscripten")),
        "x86_64" => Value::from(arch == Some(Arch::X86_64)),
        "x86" => Value::from(arch == Some(Arch::X86)),
        "aarch64" => Value::from(arch == Some(Arch::Aarch64)),
        "arm64" => Value::from(arch == Some(Arch::Arm64)),
        "armv6l" => Value::from(arch == Some(Arch::ArmV6l)),
        "armv7l" => Value::from(arch == Some(Arch::ArmV7l)),
        "ppc64le" => Value::from(arch == Some(Arch::Ppc64le)),
        "s390x" => Value::from(arch == Some(Arch::S390X)),
        "wasm32" => Value::from(arch == Some(Arch::Wasm32)),
        _ => return None,
    };
    Some(value)
}

/// Every platform variable name.
pub(crate) fn platform_names() -> &'static [&'static str] {
    &[
        "target_platform",
        "host_platform",
        "build_platform",
        "unix",
        "linux",
        "osx",
        "win",
        "emscripten",
        "x86_64",
        "x86",
        "aarch64",
        "arm64",
        "armv6l",
        "armv7l",
        "ppc64le",
        "s390x",
        "wasm32",
    ]
}

impl Object for Scope {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        if key == SCOPE_KEY {
            return Some(Value::from_dyn_object(self.clone()));
        }
        if key == "hash" {
            self.state().hash_used = true;
            return Some(Value::from(
                self.hash.clone().unwrap_or_else(|| "h0000000".into()),
            ));
        }
        if let Some(index) = self.shared.context.iter().position(|(k, _)| k == key) {
            return self.context_value(index);
        }
        if self.shared.variants.contains(key) {
            return match self.assignment.get(key) {
                Some(value) => Some(coerce(value)),
                None => {
                    self.set_need(Need::Key(key.to_string()));
                    None
                }
            };
        }
        if let Some(value) = self.platform_value(key) {
            return Some(value);
        }
        if !FUNCTIONS.contains(&key) {
            self.state().undefined = Some(key.to_string());
        }
        None
    }
}

/// `true`, `false` and integers as YAML reads them; everything else as text.
fn coerce(text: &str) -> Value {
    match text {
        "true" | "True" => Value::from(true),
        "false" | "False" => Value::from(false),
        _ => match text.parse::<i64>() {
            Ok(n) if !text.starts_with('0') || text == "0" => Value::from(n),
            _ => Value::from(text),
        },
    }
}

/// Compiles a bare expression (a selector, a `skip` condition).
///
/// Template delimiters cannot appear in an expression, and minijinja's lexer
/// panics on a stray `}}` in one under custom syntax, so they are rejected
/// here first.
pub(crate) fn compile_expression(expr: &str) -> Result<minijinja::Expression<'_, '_>, Error> {
    if let Some(delimiter) = ["${{", "}}", "${%", "%}", "${#", "#}"]
        .into_iter()
        .find(|d| expr.contains(d))
    {
        return Err(Error::new(
            ErrorKind::SyntaxError,
            format!("`{delimiter}` cannot appear inside an expression"),
        ));
    }
    environment().compile_expression(expr)
}

/// The expression inside a template that is exactly one `${{ expr }}`.
pub(crate) fn whole_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("${{")?.strip_suffix("}}")?;
    (!inner.contains("${{") && !inner.contains("}}")).then_some(inner.trim())
}

/// Turns a template error into a problem pointing as close to the cause as
/// the source allows.
pub(crate) fn template_problem(
    scope: &Scope,
    source: &SourceFile,
    node: &Node,
    err: &Error,
) -> Problem {
    let template = node.as_str().unwrap_or_default();
    let written = source.slice(node.span);
    let span = match (err.range(), written.find(template)) {
        (Some(range), Some(at)) if !template.is_empty() && range.end <= template.len() => {
            miette::SourceSpan::new((node.span.offset() + at + range.start).into(), range.len())
        }
        _ => node.span,
    };
    if err.kind() == ErrorKind::UndefinedError
        && let Some(name) = scope.take_undefined()
    {
        let known = scope.known_names();
        let problem = Problem::new(
            source,
            ProblemKind::UndefinedVariable { name: name.clone() },
            span,
        );
        return match crate::error::suggest(&name, known.iter().map(String::as_str)) {
            Some(close) => problem.with_help(format!("did you mean `{close}`?")),
            None => problem.with_help("define it under `context:` or in a variant config file"),
        };
    }
    let detail = err
        .detail()
        .map_or_else(|| err.kind().to_string(), str::to_string);
    let hint = (detail.contains("'max_pin'") || detail.contains("'min_pin'"))
        .then_some("conda-build's `min_pin`/`max_pin` are `lower_bound`/`upper_bound` here");
    let problem = Problem::new(source, ProblemKind::Template(detail), span);
    match hint {
        Some(hint) => problem.with_help(hint),
        None => problem,
    }
}

fn default_compiler(lang: &str, target: Subdir) -> String {
    let osx = target.is_osx();
    let win = target.is_windows();
    match lang {
        "c" if osx => "clang",
        "cxx" if osx => "clangxx",
        "c" | "cxx" if win => "vs2019",
        "c" => "gcc",
        "cxx" => "gxx",
        "fortran" if win => "flang",
        "fortran" => "gfortran",
        other => other,
    }
    .to_string()
}

fn compiler(state: &State, lang: String) -> Result<String, Error> {
    let scope = Scope::from_state(state)?;
    let name = match scope.variant_value(&format!("{lang}_compiler"))? {
        Some(name) => name,
        None => default_compiler(&lang, scope.target()),
    };
    let version = scope.variant_value(&format!("{lang}_compiler_version"))?;
    let package = format!("{name}_{}", scope.target().as_str());
    Ok(match version {
        Some(version) => format!("{package} {}", version_constraint(&version)),
        None => package,
    })
}

/// A variant value as a version constraint: `3.12` means `3.12.*`; a value
/// that already has an operator or wildcard is used as written.
pub(crate) fn version_constraint(value: &str) -> String {
    if value.contains(|c: char| "*<>=!~,|".contains(c)) {
        value.to_string()
    } else {
        format!("{value}.*")
    }
}

fn cdt(state: &State, package: String) -> Result<String, Error> {
    let scope = Scope::from_state(state)?;
    let name = scope
        .variant_value("cdt_name")?
        .unwrap_or_else(|| "conda".into());
    let arch = match scope.target().arch() {
        Some(Arch::Aarch64) => "aarch64",
        Some(Arch::Ppc64le) => "ppc64le",
        Some(Arch::S390X) => "s390x",
        _ => "x86_64",
    };
    let arch = scope
        .variant_value("cdt_arch")?
        .unwrap_or_else(|| arch.into());
    Ok(format!("{package}-{name}-{arch}"))
}

fn pin_args(name: String, kwargs: &Kwargs) -> Result<PinArgs, Error> {
    let bound = |key: &str, default: &str| -> Result<Option<String>, Error> {
        if kwargs.has(key) {
            let value: Option<Value> = kwargs.get(key)?;
            Ok(value.filter(|v| !v.is_none()).map(|v| v.to_string()))
        } else {
            Ok(Some(default.to_string()))
        }
    };
    let args = PinArgs {
        lower_bound: bound("lower_bound", "x.x.x.x.x.x")?,
        upper_bound: bound("upper_bound", "x")?,
        exact: kwargs.get::<Option<bool>>("exact")?.unwrap_or(false),
        name,
    };
    kwargs.assert_all_used()?;
    Ok(args)
}

fn marker(mark: &str, args: &PinArgs) -> Result<String, Error> {
    let json = serde_json::to_string(args)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    Ok(format!("{mark}{json}"))
}

fn pin_subpackage(state: &State, name: String, kwargs: Kwargs) -> Result<String, Error> {
    let scope = Scope::from_state(state)?;
    let args = pin_args(name, &kwargs)?;
    if scope.self_name.as_deref() == Some(args.name.as_str()) {
        return marker(PIN_SUBPACKAGE_MARK, &args);
    }
    let names = scope
        .shared
        .package_names
        .get()
        .cloned()
        .unwrap_or_default();
    if !names.contains(&args.name) {
        let known = names.iter().map(String::as_str);
        let hint = crate::error::suggest(&args.name, known)
            .map(|close| format!(" (did you mean `{close}`?)"))
            .unwrap_or_default();
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "pin_subpackage names `{}`, which is not an output of this recipe{hint}",
                args.name
            ),
        ));
    }
    let targets = scope
        .shared
        .rendered
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&args.name)
        .cloned();
    let Some(targets) = targets else {
        return Err(scope.set_need(Need::Output(args.name)));
    };
    // Pick the instance that agrees with this render on every shared key;
    // an exact pin also takes over the keys the pinned output uses.
    let compatible = targets.iter().find(|t| {
        t.variant
            .iter()
            .all(|(k, v)| scope.assignment.get(k).is_none_or(|mine| mine == v))
    });
    let Some(target) = compatible else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "no variant of `{}` matches this output's variant",
                args.name
            ),
        ));
    };
    if args.exact
        && let Some(key) = target
            .variant
            .keys()
            .find(|k| !scope.assignment.contains_key(*k))
    {
        return Err(scope.set_need(Need::Key(key.clone())));
    }
    Ok(crate::model::pin_spec_for(
        &args,
        &target.version,
        &target.build_string,
    ))
}

fn pin_compatible(name: String, kwargs: Kwargs) -> Result<String, Error> {
    let args = pin_args(name, &kwargs)?;
    marker(PIN_COMPATIBLE_MARK, &args)
}

fn match_version(value: Value, spec: String) -> Result<bool, Error> {
    let text = value.to_string();
    let text = text.trim().trim_end_matches(".*").trim_end_matches('*');
    let invalid =
        |what: &str, e: String| Error::new(ErrorKind::InvalidOperation, format!("{what}: {e}"));
    let version: Version = text
        .parse()
        .map_err(|e: rattler_conda_types::ParseVersionError| {
            invalid("invalid version", e.to_string())
        })?;
    let spec = VersionSpec::from_str(&spec, ParseStrictness::Lenient)
        .map_err(|e| invalid("invalid version spec", e.to_string()))?;
    Ok(spec.matches(&version))
}

fn platform_test(platform: &str, test: fn(Subdir) -> bool) -> Result<bool, Error> {
    platform
        .parse::<Subdir>()
        .map(test)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
}

/// `3.11` or `3.11.*` becomes `311`, as in `py311` build strings.
fn version_to_buildstring(value: Value) -> String {
    let text = value.to_string();
    text.trim_end_matches(".*")
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join("")
}
