//! The `${{ ... }}` template language and the names it can see.
//!
//! A [`Scope`] is the root context of one render of one output under one
//! (partial) variant assignment. It records every variant key the templates
//! read. When a template reads a variant key that has no value yet, the scope
//! notes it as [`Need::Key`] and the render is aborted; the renderer then tries
//! again once per value of that key. This is how an output ends up rendered
//! once per combination of exactly the keys it uses.
//!
//! Some names only get a value when the build runs: `${{ PYTHON }}` or
//! `${{ SRC_DIR }}` in a build script, `${{ RECIPE_DIR }}` in a patch path.
//! In those fields ([`Field`]) such a name renders as itself, `${{ NAME }}`,
//! and the build engine fills it in from the build's environment (see
//! [`crate::build_time`]). Everything else in the field is rendered now, so
//! `cleave render` shows the script that will run.

mod functions;
mod objects;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Object, Value};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior};
use rattler_conda_types::Subdir;

use crate::error::{Problem, ProblemKind};
use crate::source::SourceFile;
use crate::variant::{VariantConfig, VariantValue, normalize_key};
use crate::yaml::{Node, NodeKind};

pub(crate) use functions::FUNCTIONS;

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
    pub(crate) variant: BTreeMap<String, VariantValue>,
}

/// What every render of one recipe shares.
pub(crate) struct Shared {
    pub(crate) source: SourceFile,
    pub(crate) recipe_dir: PathBuf,
    pub(crate) context: Vec<(String, Node)>,
    pub(crate) variants: VariantConfig,
    pub(crate) target: Subdir,
    pub(crate) build: Subdir,
    /// Names of the recipe's package outputs, for `pin_subpackage`.
    pub(crate) package_names: OnceLock<BTreeSet<String>>,
    /// Outputs rendered so far, by name.
    pub(crate) rendered: Mutex<HashMap<String, Vec<PinTarget>>>,
    /// Outputs whose render failed: a pin of one is an echo of that
    /// failure, not a problem of its own.
    pub(crate) failed: Mutex<BTreeSet<String>>,
}

/// The kind of field being rendered, which decides the names that are only
/// known at build time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    /// Any other field: every name must be defined now.
    Plain,
    /// `build.string`: `hash` and `build_number` are defined.
    BuildString,
    /// The lines of a build or test script: a name that is not a recipe
    /// variable is taken from the script's environment when it runs.
    Script,
    /// `source.patches`: `SRC_DIR`, `RECIPE_DIR` and `BUILD_DIR`.
    Patches,
    /// `about.license_file`: those and `PREFIX`, `BUILD_PREFIX`.
    LicenseFile,
}

impl Field {
    fn defers(self, name: &str) -> bool {
        match self {
            Field::Plain | Field::BuildString => false,
            Field::Script => !FUNCTIONS.contains(&name),
            Field::Patches => matches!(name, "SRC_DIR" | "RECIPE_DIR" | "BUILD_DIR"),
            Field::LicenseFile => matches!(
                name,
                "SRC_DIR" | "RECIPE_DIR" | "BUILD_DIR" | "PREFIX" | "BUILD_PREFIX"
            ),
        }
    }
}

/// The root context of one render.
pub(crate) struct Scope {
    shared: Arc<Shared>,
    assignment: BTreeMap<String, VariantValue>,
    /// The seven hex digits of the variant hash, once known.
    hash: Option<String>,
    /// The build number, for `build.string`.
    build_number: u64,
    self_name: Option<String>,
    state: Mutex<ScopeState>,
}

#[derive(Default)]
struct ScopeState {
    need: Option<Need>,
    /// The render failed because a sibling it pins failed.
    echo: bool,
    undefined: Option<String>,
    hash_used: bool,
    build_platform_used: bool,
    field: Option<Field>,
    /// `name: "version build"` for every sibling pinned exactly.
    exact_pins: BTreeMap<String, String>,
    /// Variant keys a template or function read. An exact pin of a sibling
    /// also fixes the sibling's keys, but only these are this output's own.
    read_keys: BTreeSet<String>,
    /// Script names that are neither recipe nor build variables.
    unknown_build_names: Vec<String>,
    context_cache: HashMap<String, Value>,
    /// While rendering context entry `i`, only entries before `i` are visible.
    context_limit: Vec<usize>,
    problems: Vec<Problem>,
}

const SCOPE_KEY: &str = "__cleave_scope";

/// How many steps (minijinja's fuel: instructions) one evaluation of a
/// template may take. A recipe's templates take a few dozen; the bound
/// keeps a loop from running for ever and, since a value grows by at most
/// one level per step, keeps every value shallow enough for the code that
/// walks it recursively (printing, comparing, dropping).
pub(crate) const FUEL: u64 = 10_000;

/// How deeply macros may call each other (minijinja's own limit is 500,
/// which a debug build's stack does not hold).
pub(crate) const RECURSION_LIMIT: usize = 64;

/// A template environment with [`FUEL`] and [`RECURSION_LIMIT`] set.
pub(crate) fn bounded_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    env
}

/// The shared template environment: `${{ }}` syntax, strict undefined.
pub(crate) fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = bounded_environment();
        env.set_syntax(syntax());
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        // Recipes call Python string methods: `version.split('.')[0]`.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        functions::register(&mut env);
        env
    })
}

/// `${{ }}`, `${% %}` and `${# #}`.
pub(crate) fn syntax() -> SyntaxConfig {
    SyntaxConfig::builder()
        .variable_delimiters("${{", "}}")
        .block_delimiters("${%", "%}")
        .comment_delimiters("${#", "#}")
        .build()
        .unwrap_or_default()
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("assignment", &self.assignment)
            .finish_non_exhaustive()
    }
}

/// What a finished render learned besides its text.
#[derive(Debug, Default, Clone)]
pub(crate) struct Learned {
    /// Whether `hash` was read (the render must be repeated with the hash).
    pub(crate) hash_used: bool,
    /// Whether `build_platform` was read (it joins the variant).
    pub(crate) build_platform_used: bool,
    /// `name: "version build"` for siblings pinned exactly.
    pub(crate) exact_pins: BTreeMap<String, String>,
    /// Variant keys the render read.
    pub(crate) read_keys: BTreeSet<String>,
}

impl Scope {
    pub(crate) fn new(
        shared: Arc<Shared>,
        assignment: BTreeMap<String, VariantValue>,
        self_name: Option<String>,
    ) -> Arc<Self> {
        Arc::new(Scope {
            shared,
            assignment,
            hash: None,
            build_number: 0,
            self_name,
            state: Mutex::new(ScopeState::default()),
        })
    }

    /// A scope that knows the variant hash and build number, for the
    /// render that fills in `build.string`.
    pub(crate) fn with_hash(
        shared: Arc<Shared>,
        assignment: BTreeMap<String, VariantValue>,
        self_name: Option<String>,
        hash: String,
        build_number: u64,
    ) -> Arc<Self> {
        Arc::new(Scope {
            shared,
            assignment,
            hash: Some(hash),
            build_number,
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

    /// True once a context entry or a pinned sibling failed; later errors
    /// are echoes of that failure.
    pub(crate) fn has_problems(&self) -> bool {
        let state = self.state();
        state.echo || !state.problems.is_empty()
    }

    /// Notes that output `name`, pinned here, failed to render, and returns
    /// the error that stops this render without a report of its own.
    pub(crate) fn sibling_failed(&self, name: &str) -> Option<Error> {
        let failed = self
            .shared
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name);
        failed.then(|| {
            self.state().echo = true;
            Error::new(
                ErrorKind::InvalidOperation,
                format!("`{name}` failed to render"),
            )
        })
    }

    /// What the renders so far learned.
    pub(crate) fn learned(&self) -> Learned {
        let state = self.state();
        Learned {
            hash_used: state.hash_used,
            build_platform_used: state.build_platform_used,
            exact_pins: state.exact_pins.clone(),
            read_keys: state.read_keys.clone(),
        }
    }

    /// Script names read since the last call that are neither recipe
    /// variables nor variables the build sets.
    pub(crate) fn take_unknown_build_names(&self) -> Vec<String> {
        std::mem::take(&mut self.state().unknown_build_names)
    }

    /// Problems found while rendering context entries on demand.
    pub(crate) fn take_problems(&self) -> Vec<Problem> {
        std::mem::take(&mut self.state().problems)
    }

    /// Sets the kind of field the next renders are in; returns the previous.
    pub(crate) fn enter(&self, field: Field) -> Option<Field> {
        self.state().field.replace(field)
    }

    /// Restores the field kind `enter` returned.
    pub(crate) fn leave(&self, previous: Option<Field>) {
        self.state().field = previous;
    }

    fn field(&self) -> Field {
        self.state().field.unwrap_or(Field::Plain)
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
        names.extend(crate::platform::names().map(String::from));
        names.extend(FUNCTIONS.iter().map(|s| s.to_string()));
        names
    }

    /// The value of a variant key, `Ok(None)` if the config does not set it,
    /// and an error that aborts the render if it is set but not yet chosen.
    pub(crate) fn variant_value(&self, key: &str) -> Result<Option<VariantValue>, Error> {
        if !self.shared.variants.contains(key) {
            return Ok(None);
        }
        let key = normalize_key(key);
        match self.assignment.get(&key) {
            Some(value) => {
                self.state().read_keys.insert(key);
                Ok(Some(value.clone()))
            }
            None => Err(self.set_need(Need::Key(key))),
        }
    }

    /// The value already chosen for `key`, if any.
    pub(crate) fn assigned(&self, key: &str) -> Option<&VariantValue> {
        self.assignment.get(key)
    }

    pub(crate) fn target(&self) -> Subdir {
        self.shared.target
    }

    pub(crate) fn recipe_dir(&self) -> &Path {
        &self.shared.recipe_dir
    }

    pub(crate) fn self_name(&self) -> Option<&str> {
        self.self_name.as_deref()
    }

    pub(crate) fn package_names(&self) -> BTreeSet<String> {
        self.shared.package_names.get().cloned().unwrap_or_default()
    }

    /// The rendered instances of output `name`, once it is rendered.
    pub(crate) fn rendered(&self, name: &str) -> Option<Vec<PinTarget>> {
        self.shared
            .rendered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Notes an exact pin of a sibling: it joins this output's variant, so
    /// a new build of the sibling is a new build of this output.
    pub(crate) fn record_exact_pin(&self, name: &str, version: &str, build: &str) {
        self.state()
            .exact_pins
            .insert(normalize_key(name), format!("{version} {build}"));
    }

    fn from_state(state: &State) -> Result<Arc<Scope>, Error> {
        state
            .lookup(SCOPE_KEY)
            .and_then(|v| v.downcast_object::<Scope>())
            .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "no recipe scope"))
    }

    /// Evaluates context entry `index` (cached), so the variant keys it
    /// reads are read.
    pub(crate) fn context_value(self: &Arc<Self>, index: usize) -> Option<Value> {
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
        // Context entries are plain values, whatever field uses them.
        let field = self.state().field.take();
        self.state().context_limit.push(index);
        let value = self.node_value(node);
        self.state().context_limit.pop();
        self.state().field = field;
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
                self.hash.clone().unwrap_or_else(|| "0000000".into()),
            ));
        }
        if let Some(index) = self.shared.context.iter().position(|(k, _)| k == key) {
            return self.context_value(index);
        }
        if self.shared.variants.contains(key) {
            return self.variant_value(key).ok().flatten().map(|v| v.to_jinja());
        }
        if let Some(value) = crate::platform::value(key, self.shared.target, self.shared.build) {
            if key == "build_platform" {
                self.state().build_platform_used = true;
            }
            return Some(value);
        }
        let field = self.field();
        match key {
            "build_number" if field == Field::BuildString => {
                return Some(Value::from(self.build_number));
            }
            "env" => return Some(Value::from_object(objects::EnvObject)),
            "git" => {
                return Some(Value::from_object(objects::GitObject {
                    recipe_dir: self.shared.recipe_dir.clone(),
                }));
            }
            _ => {}
        }
        if field.defers(key) {
            if field == Field::Script && !crate::build_time::BUILD_VARIABLES.contains(&key) {
                self.state().unknown_build_names.push(key.to_string());
            }
            return Some(Value::from(crate::build_time::token(key)));
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
    check_expression(expr)?;
    environment().compile_expression(expr)
}

/// Rejects template delimiters in a bare expression, which minijinja's
/// lexer can panic on.
pub(crate) fn check_expression(expr: &str) -> Result<(), Error> {
    match ["{{", "}}", "{%", "%}", "{#", "#}"]
        .into_iter()
        .find(|d| expr.contains(d))
    {
        Some(delimiter) => Err(Error::new(
            ErrorKind::SyntaxError,
            format!("`{delimiter}` cannot appear inside an expression"),
        )),
        None => Ok(()),
    }
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
    let span = match err.range() {
        Some(range) if !template.is_empty() && range.end <= template.len() => {
            crate::position::locate(source, node.span, template, range).unwrap_or(node.span)
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
    let stdlib = detail
        .strip_prefix("no stdlib for language `")
        .and_then(|rest| rest.split('`').next());
    let hint = if err.kind() == ErrorKind::OutOfFuel {
        Some(format!(
            "one template may take {FUEL} steps (a recipe's take a few dozen): does a loop run too long?"
        ))
    } else if detail.contains("'max_pin'") || detail.contains("'min_pin'") {
        Some("conda-build's `min_pin`/`max_pin` are `lower_bound`/`upper_bound` here".to_string())
    } else {
        stdlib.map(|lang| {
            format!(
                "conda-forge's variant files set it: `{lang}_stdlib: [sysroot]` and `{lang}_stdlib_version: [\"2.17\"]` on Linux"
            )
        })
    };
    let problem = Problem::new(source, ProblemKind::Template(detail), span);
    match hint {
        Some(hint) => problem.with_help(hint),
        None => problem,
    }
}
