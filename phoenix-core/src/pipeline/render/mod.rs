//! Handlebars rendering of Collector configs.
//!
//! Rules: strict mode (a missing field is an error, never an empty string); every `{{value}}`
//! goes through [`escape::yaml_scalar`], which makes it one quoted YAML scalar (no HTML
//! escaping); triple-stash `{{{...}}}`, `{{& ...}}` and raw blocks are refused when a document
//! is registered, so nothing bypasses the escape; documents are registered once (built-in or
//! by an administrator through [`TemplateRegistry::register`](super::TemplateRegistry::register))
//! and compiled once; text from requests is only ever data, never a template.
//!
//! Helpers, in the spirit of Sprig: `default`, `quote`, `join`, `upper`, `lower` and
//! `duration` return values (so their output is escaped like any value); `toYaml` writes
//! flow-style YAML whose every string is quoted by the same escape; `indent` is a block
//! helper that indents its already escaped content.

pub mod collector;
pub mod escape;
pub mod tap;

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, Renderable, ScopedJson, StringOutput,
};
use serde_json::Value;

use self::collector::CollectorModel;
use self::escape::{flow_yaml, yaml_scalar};
use super::syntax::format_duration_secs;

/// Name of the built-in collector document.
pub const COLLECTOR_DOCUMENT: &str = "collector";

/// Largest document template an administrator may register, bytes.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

const COLLECTOR_SOURCE: &str = include_str!("../templates/collector.yaml.hbs");

/// Why a document template cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The template uses a construct that bypasses escaping.
    #[error("templates may not use `{construct}` (it bypasses escaping)")]
    Unescaped {
        /// The construct found.
        construct: &'static str,
    },
    /// The template is larger than [`MAX_DOCUMENT_BYTES`].
    #[error("template is larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    /// Handlebars rejected the template.
    #[error("template does not compile: {0}")]
    Syntax(String),
}

/// Compiled documents with Phoenix's escape and helpers.
#[derive(Debug, Clone)]
pub struct Renderer {
    handlebars: Handlebars<'static>,
}

impl Default for Renderer {
    fn default() -> Self {
        let mut handlebars = Handlebars::new();
        handlebars.set_strict_mode(true);
        handlebars.register_escape_fn(yaml_scalar);
        handlebars.register_helper("toYaml", Box::new(ToYaml));
        handlebars.register_helper("indent", Box::new(Indent));
        handlebars.register_helper("default", Box::new(DefaultHelper));
        handlebars.register_helper("quote", Box::new(StringHelper(|s| s.to_owned())));
        handlebars.register_helper("upper", Box::new(StringHelper(str::to_uppercase)));
        handlebars.register_helper("lower", Box::new(StringHelper(str::to_lowercase)));
        handlebars.register_helper("join", Box::new(Join));
        handlebars.register_helper("duration", Box::new(Duration));
        let mut renderer = Self { handlebars };
        renderer
            .register(COLLECTOR_DOCUMENT, COLLECTOR_SOURCE)
            .expect("the built-in collector document compiles");
        renderer
    }
}

impl Renderer {
    /// Compiles and registers `source` under `name`.
    ///
    /// # Errors
    /// When `source` is too large, bypasses escaping or does not compile.
    pub fn register(&mut self, name: &str, source: &str) -> Result<(), DocumentError> {
        if source.len() > MAX_DOCUMENT_BYTES {
            return Err(DocumentError::TooLarge);
        }
        check_escaping(source)?;
        self.handlebars
            .register_template_string(name, source)
            .map_err(|e| DocumentError::Syntax(e.to_string()))
    }

    /// True when a document `name` is registered.
    #[must_use]
    pub fn has(&self, name: &str) -> bool {
        self.handlebars.has_template(name)
    }

    /// Renders document `name` with `model`.
    ///
    /// # Errors
    /// The handlebars error, as text (a missing field in strict mode, a helper misuse).
    pub fn render(&self, name: &str, model: &CollectorModel) -> Result<String, String> {
        self.handlebars
            .render(name, model)
            .map_err(|e| e.to_string())
    }

    /// Renders document `name` with arbitrary data (for tests and administrators' previews).
    ///
    /// # Errors
    /// The handlebars error, as text.
    pub fn render_value(&self, name: &str, data: &Value) -> Result<String, String> {
        self.handlebars
            .render(name, data)
            .map_err(|e| e.to_string())
    }
}

/// Refuses every construct that writes a value without the escape function.
fn check_escaping(source: &str) -> Result<(), DocumentError> {
    let bytes = source.as_bytes();
    let mut i = 0;
    while let Some(pos) = source[i..].find("{{") {
        let mut j = i + pos + 2;
        if bytes.get(j) == Some(&b'~') {
            j += 1;
        }
        match bytes.get(j) {
            Some(b'{') => {
                return Err(DocumentError::Unescaped {
                    construct: "{{{ }}}",
                });
            }
            Some(b'&') => {
                return Err(DocumentError::Unescaped {
                    construct: "{{& }}",
                });
            }
            _ => {}
        }
        i = j;
    }
    // An escaped mustache (`\{{`) would print template text verbatim, which is harmless, but
    // there is no reason for a config template to need it.
    if source.contains("\\{{") {
        return Err(DocumentError::Unescaped { construct: "\\{{" });
    }
    Ok(())
}

fn helper_error(helper: &str, message: &str) -> RenderError {
    RenderErrorReason::Other(format!("{helper}: {message}")).into()
}

/// `{{toYaml value}}`: flow-style YAML, every string quoted.
struct ToYaml;

impl HelperDef for ToYaml {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let value = h
            .param(0)
            .ok_or_else(|| helper_error("toYaml", "needs a value"))?;
        if value.is_value_missing() {
            return Err(helper_error("toYaml", "value is missing"));
        }
        out.write(&flow_yaml(value.value()))?;
        Ok(())
    }
}

/// `{{#indent 4}}...{{/indent}}`: renders the block, then indents every non-empty line.
struct Indent;

impl HelperDef for Indent {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let width = h
            .param(0)
            .and_then(|p| p.value().as_u64())
            .filter(|w| *w <= 64)
            .ok_or_else(|| helper_error("indent", "needs a width from 0 to 64"))?;
        let template = h
            .template()
            .ok_or_else(|| helper_error("indent", "is a block helper"))?;
        let mut inner = StringOutput::new();
        template.render(r, ctx, rc, &mut inner)?;
        let text = inner.into_string()?;
        let pad = " ".repeat(usize::try_from(width).unwrap_or(0));
        for line in text.split_inclusive('\n') {
            if !line.trim().is_empty() {
                out.write(&pad)?;
            }
            out.write(line)?;
        }
        Ok(())
    }
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `{{default value fallback}}`: `fallback` when `value` is missing, null, `""` or `[]`.
struct DefaultHelper;

impl HelperDef for DefaultHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let fallback = h
            .param(1)
            .ok_or_else(|| helper_error("default", "needs a value and a fallback"))?;
        let empty = h.param(0).is_none_or(|v| {
            v.is_value_missing()
                || match v.value() {
                    Value::Null => true,
                    Value::String(s) => s.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    _ => false,
                }
        });
        let chosen = if empty {
            fallback.value().clone()
        } else {
            h.param(0).map_or(Value::Null, |v| v.value().clone())
        };
        Ok(ScopedJson::Derived(chosen))
    }
}

/// A string-to-string helper (`quote`, `upper`, `lower`).
struct StringHelper(fn(&str) -> String);

impl HelperDef for StringHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let value = h
            .param(0)
            .filter(|v| !v.is_value_missing())
            .ok_or_else(|| helper_error(h.name(), "needs a value"))?;
        Ok(ScopedJson::Derived(Value::String((self.0)(&as_text(
            value.value(),
        )))))
    }
}

/// `{{join list ", "}}`.
struct Join;

impl HelperDef for Join {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let list = h
            .param(0)
            .and_then(|v| v.value().as_array())
            .ok_or_else(|| helper_error("join", "needs a list"))?;
        let sep = h.param(1).and_then(|v| v.value().as_str()).unwrap_or(",");
        let joined = list.iter().map(as_text).collect::<Vec<_>>().join(sep);
        Ok(ScopedJson::Derived(Value::String(joined)))
    }
}

/// `{{duration seconds}}`: a Go duration string (`90` → `1m30s`).
struct Duration;

impl HelperDef for Duration {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let secs = h
            .param(0)
            .and_then(|v| v.value().as_u64())
            .ok_or_else(|| helper_error("duration", "needs whole seconds"))?;
        Ok(ScopedJson::Derived(Value::String(format_duration_secs(
            secs,
        ))))
    }
}

#[cfg(test)]
mod tests;
