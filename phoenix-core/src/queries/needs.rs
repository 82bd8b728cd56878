//! What a PromQL query needs of the series, from its syntax tree (`promql-parser`).
//!
//! A query needs each of its selectors to match series, and the labels its matchers test.
//! It also needs the labels it groups, matches or copies by: `by (...)` of aggregations,
//! `on (...)` and `group_left/right (...)` of binary operators, the sources of
//! `label_replace`/`label_join`, the labels of `sort_by_label`, `le` of
//! `histogram_quantile`. Where a selector's labels reach the output unaggregated (no `by`
//! above it, or a `without`/`ignoring` that names only some), every label of its series is
//! part of the answer, except those the query removes itself.

use std::collections::BTreeSet;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr, LabelModifier, VectorMatchCardinality, VectorSelector};
use serde::{Deserialize, Serialize};

/// The placeholder a dashboard template variable becomes inside a quoted string. A matcher
/// whose value holds it needs its label present, whatever the value.
pub(crate) const VARIABLE_MARKER: &str = "__phoenix_var__";

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
    /// A template variable: the label must be present, any value.
    Present,
}

/// One label matcher of a selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LabelMatch {
    /// The label.
    pub label: String,
    /// The comparison.
    pub kind: MatchKind,
    /// The value or regular expression, as written.
    pub value: String,
}

/// One selector of a query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorNeed {
    /// The selector as PromQL (`metric{label="x"}`).
    pub text: String,
    /// The metric name, when the selector names one.
    pub metric: Option<String>,
    /// The label matchers (a `__name__` matcher other than the name included).
    pub matchers: Vec<LabelMatch>,
    /// Whether the selector's labels reach the query's output (no aggregation by a list
    /// of labels above it).
    pub keeps_labels: bool,
    /// Labels the query itself removes from this selector's series (`without`,
    /// `ignoring`): losing them changes nothing.
    pub removed: BTreeSet<String>,
}

/// What a query needs of the series.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueryNeeds {
    /// Every selector, in query order.
    pub selectors: Vec<SelectorNeed>,
    /// Labels it groups, matches or copies by.
    pub grouping: BTreeSet<String>,
}

impl QueryNeeds {
    /// Every metric name the query selects by name.
    pub fn metrics(&self) -> impl Iterator<Item = &str> {
        self.selectors.iter().filter_map(|s| s.metric.as_deref())
    }

    /// Every label the query needs by name: matched, grouped, matched on or copied.
    #[must_use]
    pub fn labels(&self) -> BTreeSet<&str> {
        let mut labels: BTreeSet<&str> = self.grouping.iter().map(String::as_str).collect();
        for s in &self.selectors {
            labels.extend(s.matchers.iter().map(|m| m.label.as_str()));
        }
        labels.remove("__name__");
        labels
    }
}

/// A selector with its matchers compiled, for evaluation.
#[derive(Debug, Clone)]
pub(crate) struct CompiledSelector {
    pub(crate) need: SelectorNeed,
    /// The name matcher first when the selector names a metric.
    pub(crate) matchers: Vec<Matcher>,
}

impl CompiledSelector {
    /// Whether a series with this name and labels matches (an absent label is `""`).
    pub(crate) fn matches<'a>(
        &self,
        metric: &str,
        label: impl Fn(&str) -> Option<&'a str>,
    ) -> bool {
        self.matchers.iter().all(|m| {
            let value = if m.name == "__name__" {
                metric
            } else {
                label(&m.name).unwrap_or("")
            };
            m.is_match(value)
        })
    }
}

/// Whether an expression answers from series, given which of its selectors match any: what
/// a query needs in order to answer at all (`absent(x)` answers from `x`).
#[derive(Debug, Clone)]
pub(crate) enum Data {
    /// The series of the selector of this index.
    Selector(usize),
    /// Only when every part does (`a * b`, `a and b`: vector matching keeps what both
    /// sides have).
    All(Vec<Data>),
    /// When any part does (`a or b`, a function of several vectors).
    Any(Vec<Data>),
    /// No series: a number, `vector(1)`, `time()`.
    Constant,
}

impl Data {
    /// Whether the expression returns series when `observed[i]` says whether selector `i`
    /// matches any.
    pub(crate) fn returns_series(&self, observed: &[bool]) -> bool {
        match self {
            Self::Selector(i) => observed.get(*i).copied().unwrap_or(false),
            Self::All(parts) => parts.iter().all(|p| p.returns_series(observed)),
            Self::Any(parts) => parts.iter().any(|p| p.returns_series(observed)),
            Self::Constant => false,
        }
    }
}

/// A parsed query, compiled.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub(crate) selectors: Vec<CompiledSelector>,
    pub(crate) grouping: BTreeSet<String>,
    /// When the whole query returns series.
    pub(crate) data: Data,
}

impl Compiled {
    pub(crate) fn needs(&self) -> QueryNeeds {
        QueryNeeds {
            selectors: self.selectors.iter().map(|s| s.need.clone()).collect(),
            grouping: self.grouping.clone(),
        }
    }
}

/// Parses `promql` and derives what it needs; the parser's message when it does not parse.
pub fn needs_of(promql: &str) -> Result<QueryNeeds, String> {
    compile(promql).map(|c| c.needs())
}

pub(crate) fn compile(promql: &str) -> Result<Compiled, String> {
    let expr = parser::parse(promql)?;
    let mut out = Compiled {
        selectors: Vec::new(),
        grouping: BTreeSet::new(),
        data: Data::Constant,
    };
    let data = walk(&expr, &Context::top(), &mut out);
    // A scalar query (`scalar(sum(x))`) always answers, with a value from its selectors.
    out.data = if matches!(expr.value_type(), ValueType::Vector | ValueType::Matrix) {
        data
    } else {
        Data::Any((0..out.selectors.len()).map(Data::Selector).collect())
    };
    out.grouping.remove(VARIABLE_MARKER);
    Ok(out)
}

#[derive(Debug, Clone)]
struct Context {
    keeps_labels: bool,
    removed: BTreeSet<String>,
}

impl Context {
    fn top() -> Self {
        Self {
            keeps_labels: true,
            removed: BTreeSet::new(),
        }
    }

    fn aggregated(&self) -> Self {
        Self {
            keeps_labels: false,
            removed: self.removed.clone(),
        }
    }

    fn removing(&self, labels: &[String]) -> Self {
        let mut removed = self.removed.clone();
        removed.extend(labels.iter().cloned());
        Self {
            keeps_labels: self.keeps_labels,
            removed,
        }
    }
}

/// Walks `expr`, recording its selectors and grouping labels in `out`; returns when it
/// returns series.
fn walk(expr: &Expr, cx: &Context, out: &mut Compiled) -> Data {
    match expr {
        Expr::Aggregate(a) => {
            let op = a.op.to_string();
            if let Some(param) = &a.param {
                walk(param, &Context::top().aggregated(), out);
            }
            // topk, bottomk and limitk return input series with their labels.
            let selecting = matches!(op.as_str(), "topk" | "bottomk" | "limitk" | "limit_ratio");
            let inner = match &a.modifier {
                Some(LabelModifier::Include(labels)) => {
                    out.grouping.extend(labels.labels.iter().cloned());
                    if selecting {
                        cx.clone()
                    } else {
                        cx.aggregated()
                    }
                }
                Some(LabelModifier::Exclude(labels)) => {
                    if selecting {
                        cx.clone()
                    } else {
                        cx.removing(&labels.labels)
                    }
                }
                None if selecting => cx.clone(),
                None => cx.aggregated(),
            };
            walk(&a.expr, &inner, out)
        }
        Expr::Binary(b) => {
            let mut inner = cx.clone();
            if let Some(modifier) = &b.modifier {
                let one_to_one = matches!(modifier.card, VectorMatchCardinality::OneToOne);
                match &modifier.matching {
                    Some(LabelModifier::Include(labels)) => {
                        out.grouping.extend(labels.labels.iter().cloned());
                        if one_to_one {
                            inner = cx.aggregated();
                        }
                    }
                    Some(LabelModifier::Exclude(labels)) => {
                        inner = cx.removing(&labels.labels);
                    }
                    None => {}
                }
                if let Some(labels) = modifier.card.labels() {
                    out.grouping.extend(labels.labels.iter().cloned());
                }
            }
            let lhs = walk(&b.lhs, &inner, out);
            let rhs = walk(&b.rhs, &inner, out);
            let vector = |e: &Expr| matches!(e.value_type(), ValueType::Vector);
            match (b.op.to_string().as_str(), vector(&b.lhs), vector(&b.rhs)) {
                ("or", ..) => Data::Any(vec![lhs, rhs]),
                ("unless", ..) => lhs,
                (_, true, true) => Data::All(vec![lhs, rhs]),
                (_, true, false) => lhs,
                (_, false, true) => rhs,
                (_, false, false) => Data::Constant,
            }
        }
        Expr::Paren(p) => walk(&p.expr, cx, out),
        Expr::Unary(u) => walk(&u.expr, cx, out),
        Expr::Subquery(s) => walk(&s.expr, cx, out),
        Expr::MatrixSelector(m) => selector(&m.vs, cx, out),
        Expr::VectorSelector(v) => selector(v, cx, out),
        Expr::Call(call) => {
            let args = &call.args.args;
            let strings = |from: usize| -> Vec<String> {
                args.iter()
                    .skip(from)
                    .filter_map(|a| match a.as_ref() {
                        Expr::StringLiteral(s) => Some(s.val.clone()),
                        _ => None,
                    })
                    .collect()
            };
            let mut inner = cx.clone();
            match call.func.name {
                "label_replace" => out.grouping.extend(strings(3).into_iter().take(1)),
                "label_join" => out.grouping.extend(strings(3)),
                "sort_by_label" | "sort_by_label_desc" => out.grouping.extend(strings(1)),
                "histogram_quantile" | "histogram_fraction" => {
                    out.grouping.insert("le".to_owned());
                }
                "absent" | "absent_over_time" | "scalar" | "vector" => inner = cx.aggregated(),
                _ => {}
            }
            let data: Vec<Data> = args.iter().map(|arg| walk(arg, &inner, out)).collect();
            // `absent(x)` answers from whether `x` has series: it watches them.
            let watches = matches!(call.func.name, "absent" | "absent_over_time");
            if !watches && !matches!(call.func.return_type, ValueType::Vector | ValueType::Matrix) {
                Data::Constant
            } else {
                Data::Any(data)
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => Data::Constant,
    }
}

fn selector(v: &VectorSelector, cx: &Context, out: &mut Compiled) -> Data {
    if v.name
        .as_deref()
        .is_some_and(|n| n.contains(VARIABLE_MARKER))
    {
        // A metric chosen by a dashboard variable: nothing to check it against.
        return Data::Constant;
    }
    let mut matchers = Vec::new();
    let mut needs = Vec::new();
    let metric = v.name.clone();
    if let Some(name) = &metric {
        matchers.push(Matcher::new(MatchOp::Equal, "__name__", name));
    }
    // `a{x="1" or y="2"}` alternatives are rare in dashboards and rules; the first set is
    // the one kept (its labels are needed either way).
    let all = v
        .matchers
        .matchers
        .iter()
        .chain(v.matchers.or_matchers.iter().flatten());
    for m in all {
        if metric.is_some() && m.name == "__name__" && m.op == MatchOp::Equal {
            continue;
        }
        let (kind, compiled) = if m.value.contains(VARIABLE_MARKER) {
            (
                MatchKind::Present,
                Matcher::new(MatchOp::NotEqual, &m.name, ""),
            )
        } else {
            let kind = match m.op {
                MatchOp::Equal => MatchKind::Equal,
                MatchOp::NotEqual => MatchKind::NotEqual,
                MatchOp::Re(_) => MatchKind::Regex,
                MatchOp::NotRe(_) => MatchKind::NotRegex,
            };
            (kind, m.clone())
        };
        needs.push(LabelMatch {
            label: m.name.clone(),
            kind,
            value: m.value.clone(),
        });
        matchers.push(compiled);
    }
    let text = selector_text(metric.as_deref(), &needs);
    let index = out.selectors.len();
    out.selectors.push(CompiledSelector {
        need: SelectorNeed {
            text,
            metric,
            matchers: needs,
            keeps_labels: cx.keeps_labels,
            removed: cx.removed.clone(),
        },
        matchers,
    });
    Data::Selector(index)
}

fn selector_text(metric: Option<&str>, matchers: &[LabelMatch]) -> String {
    let mut text = metric.unwrap_or("").to_owned();
    if !matchers.is_empty() || metric.is_none() {
        let inner: Vec<String> = matchers
            .iter()
            .map(|m| match m.kind {
                MatchKind::Equal => format!("{}={:?}", m.label, m.value),
                MatchKind::NotEqual => format!("{}!={:?}", m.label, m.value),
                MatchKind::Regex => format!("{}=~{:?}", m.label, m.value),
                MatchKind::NotRegex => format!("{}!~{:?}", m.label, m.value),
                MatchKind::Present => format!("{}=<variable>", m.label),
            })
            .collect();
        text.push('{');
        text.push_str(&inner.join(","));
        text.push('}');
    }
    text
}
