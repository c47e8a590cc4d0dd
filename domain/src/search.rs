//! The catalog search language (SPEC §11): parsing a query such as
//! `type=Kubernetes::Pod health=unhealthy,warning (tags.team=a | tags.team=b)
//! updated>now-1d` into a typed [`SearchExpr`]. The store compiles the
//! expression to SQL; nothing here touches a database.
//!
//! ```text
//! or    := and ("|" and)*          and := unary (WS+ unary)*
//! unary := "!" unary | "(" or ")" | field op value | field | word
//! op    := = != > >= < <= :        value := quoted | bare ("," bare)*
//! ```
//!
//! Whitespace is AND, `|` is OR, `!` negates, a bare word means `name=word*`,
//! `:` means contains, a comma means IN, and a leading or trailing `*` is a
//! wildcard. Errors carry the 1-based column they point at.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 2_000;
/// Most terms in one query.
pub const MAX_TERMS: usize = 50;
/// Deepest nesting of parentheses and negations.
pub const MAX_NESTING: usize = 8;
/// Deepest `related` walk.
pub const MAX_RELATED_DEPTH: u32 = 10;

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchExpr {
    /// Every part must match.
    And(Vec<SearchExpr>),
    /// Any part must match.
    Or(Vec<SearchExpr>),
    /// The part must not match.
    Not(Box<SearchExpr>),
    /// One comparison.
    Term(Term),
}

/// A field a term tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchField {
    /// The item's UUID.
    Id,
    /// Display name (case-insensitive).
    Name,
    /// Config type, e.g. `Kubernetes::Pod` (case-insensitive).
    Type,
    /// Config class (case-insensitive).
    Class,
    /// Namespace (case-insensitive).
    Namespace,
    /// Health.
    Health,
    /// Status text (case-insensitive).
    Status,
    /// Where the item came from.
    Source,
    /// Creation time.
    Created,
    /// Time of the last config change.
    Updated,
    /// Deletion time; mentioning it includes deleted items.
    Deleted,
    /// A tag, by key.
    Tag(String),
    /// A label, by key.
    Label(String),
    /// A value inside the config document, by dotted path.
    Config(Vec<String>),
    /// A display property, by name.
    Property(String),
    /// Items reached by a relationship walk.
    Related,
}

impl SearchField {
    fn parse(name: &str) -> Option<SearchField> {
        let lower = name.to_ascii_lowercase();
        let keyed = |prefix: &str| {
            name.get(prefix.len()..)
                .filter(|rest| lower.starts_with(prefix) && !rest.is_empty())
                .map(str::to_string)
        };
        if let Some(k) = keyed("tags.") {
            return Some(SearchField::Tag(k));
        }
        if let Some(k) = keyed("labels.") {
            return Some(SearchField::Label(k));
        }
        if let Some(k) = keyed("properties.") {
            return Some(SearchField::Property(k));
        }
        if let Some(path) = keyed("config.") {
            let segments: Vec<String> = path.split('.').map(str::to_string).collect();
            return (!segments.iter().any(String::is_empty))
                .then_some(SearchField::Config(segments));
        }
        Some(match lower.as_str() {
            "id" => SearchField::Id,
            "name" => SearchField::Name,
            "type" => SearchField::Type,
            "class" => SearchField::Class,
            "namespace" => SearchField::Namespace,
            "health" => SearchField::Health,
            "status" => SearchField::Status,
            "source" => SearchField::Source,
            "created" => SearchField::Created,
            "updated" => SearchField::Updated,
            "deleted" => SearchField::Deleted,
            "related" => SearchField::Related,
            _ => return None,
        })
    }
}

impl fmt::Display for SearchField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SearchField::Id => f.write_str("id"),
            SearchField::Name => f.write_str("name"),
            SearchField::Type => f.write_str("type"),
            SearchField::Class => f.write_str("class"),
            SearchField::Namespace => f.write_str("namespace"),
            SearchField::Health => f.write_str("health"),
            SearchField::Status => f.write_str("status"),
            SearchField::Source => f.write_str("source"),
            SearchField::Created => f.write_str("created"),
            SearchField::Updated => f.write_str("updated"),
            SearchField::Deleted => f.write_str("deleted"),
            SearchField::Tag(k) => write!(f, "tags.{k}"),
            SearchField::Label(k) => write!(f, "labels.{k}"),
            SearchField::Config(path) => write!(f, "config.{}", path.join(".")),
            SearchField::Property(k) => write!(f, "properties.{k}"),
            SearchField::Related => f.write_str("related"),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchOp {
    /// `=`: equal to one of the values (wildcards allowed).
    Eq,
    /// `!=`: equal to none of the values.
    Ne,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `:`: contains one of the values.
    Contains,
    /// A bare `tags.k` / `labels.k`: the key is present.
    Exists,
}

impl SearchOp {
    fn as_str(self) -> &'static str {
        match self {
            SearchOp::Eq => "=",
            SearchOp::Ne => "!=",
            SearchOp::Gt => ">",
            SearchOp::Ge => ">=",
            SearchOp::Lt => "<",
            SearchOp::Le => "<=",
            SearchOp::Contains => ":",
            SearchOp::Exists => "",
        }
    }

    /// True for `>`, `>=`, `<` and `<=`.
    pub fn is_ordering(self) -> bool {
        matches!(
            self,
            SearchOp::Gt | SearchOp::Ge | SearchOp::Lt | SearchOp::Le
        )
    }
}

/// A point in time as written in a query: `now-7d` or an RFC 3339 time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeValue {
    /// Relative to the time the query runs.
    Relative(Duration),
    /// An absolute time.
    Absolute(DateTime<Utc>),
}

impl TimeValue {
    /// The instant this value denotes when the query runs at `now`.
    pub fn resolve(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            TimeValue::Relative(offset) => now + offset,
            TimeValue::Absolute(t) => t,
        }
    }
}

/// Direction of a `related` walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelatedDirection {
    /// Upstream.
    Incoming,
    /// Downstream.
    Outgoing,
    /// Both, as two separate walks.
    Both,
}

/// Which edges a `related` walk follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelatedRelation {
    /// Parent/child edges.
    Hard,
    /// Other edges.
    Soft,
    /// All edges.
    Both,
}

/// The walk a `related=` term asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelatedSpec {
    /// The root item (excluded from the results).
    pub root: Uuid,
    /// Direction; default both.
    pub direction: RelatedDirection,
    /// Depth, 1–10; default 1.
    pub depth: u32,
    /// Relation; default both.
    pub relation: RelatedRelation,
}

/// What a term compares against, checked against its field at parse time.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchValue {
    /// Text patterns; `*` at either end is a wildcard.
    Text(Vec<String>),
    /// Health values (lower-case).
    Health(Vec<crate::model::Health>),
    /// Item ids.
    Ids(Vec<Uuid>),
    /// A time for an ordering comparison.
    Time(TimeValue),
    /// A relationship walk.
    Related(RelatedSpec),
    /// No value (`Exists`, or `deleted` with no comparison).
    None,
}

/// One comparison: `field op values`.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// The field tested.
    pub field: SearchField,
    /// The operator.
    pub op: SearchOp,
    /// The typed value.
    pub value: SearchValue,
    /// 1-based column where the term starts.
    pub column: usize,
}

/// A query that does not parse, with the 1-based column it points at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct SearchError {
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl SearchExpr {
    /// True when any term tests `deleted` (deleted items are then included).
    pub fn mentions_deleted(&self) -> bool {
        self.any_term(&|t| t.field == SearchField::Deleted)
    }

    /// Every `related` walk in the query, in order.
    pub fn related_walks(&self) -> Vec<RelatedSpec> {
        let mut out = Vec::new();
        self.visit(&mut |t| {
            if let SearchValue::Related(spec) = &t.value {
                out.push(*spec);
            }
        });
        out
    }

    fn any_term(&self, test: &dyn Fn(&Term) -> bool) -> bool {
        match self {
            SearchExpr::And(parts) | SearchExpr::Or(parts) => {
                parts.iter().any(|p| p.any_term(test))
            }
            SearchExpr::Not(inner) => inner.any_term(test),
            SearchExpr::Term(t) => test(t),
        }
    }

    fn visit(&self, f: &mut dyn FnMut(&Term)) {
        match self {
            SearchExpr::And(parts) | SearchExpr::Or(parts) => parts.iter().for_each(|p| p.visit(f)),
            SearchExpr::Not(inner) => inner.visit(f),
            SearchExpr::Term(t) => f(t),
        }
    }
}

fn quote(text: &str) -> String {
    let plain = !text.is_empty()
        && !text
            .chars()
            .any(|c| is_delimiter(c) || c == '\\' || c == '!');
    if plain {
        text.to_string()
    } else {
        format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

impl fmt::Display for TimeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeValue::Relative(d) if d.is_zero() => f.write_str("now"),
            TimeValue::Relative(d) if *d < Duration::zero() => {
                write!(f, "now-{}s", -d.num_seconds())
            }
            TimeValue::Relative(d) => write!(f, "now+{}s", d.num_seconds()),
            TimeValue::Absolute(t) => {
                f.write_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            }
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.field, self.op.as_str())?;
        let list = |items: Vec<String>| items.join(",");
        match &self.value {
            SearchValue::Text(values) => {
                f.write_str(&list(values.iter().map(|v| quote(v)).collect()))
            }
            SearchValue::Health(values) => f.write_str(&list(
                values.iter().map(|h| h.as_str().to_string()).collect(),
            )),
            SearchValue::Ids(ids) => f.write_str(&list(ids.iter().map(Uuid::to_string).collect())),
            SearchValue::Time(t) => write!(f, "{t}"),
            SearchValue::Related(spec) => {
                let direction = match spec.direction {
                    RelatedDirection::Incoming => "incoming",
                    RelatedDirection::Outgoing => "outgoing",
                    RelatedDirection::Both => "both",
                };
                let relation = match spec.relation {
                    RelatedRelation::Hard => "hard",
                    RelatedRelation::Soft => "soft",
                    RelatedRelation::Both => "both",
                };
                write!(
                    f,
                    "{},direction={direction},depth={},relation={relation}",
                    spec.root, spec.depth
                )
            }
            SearchValue::None => Ok(()),
        }
    }
}

/// Renders the expression back as query text that parses to the same
/// expression (columns aside).
impl fmt::Display for SearchExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, parts: &[SearchExpr], sep: &str| {
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                match part {
                    SearchExpr::And(_) | SearchExpr::Or(_) => write!(f, "({part})")?,
                    _ => write!(f, "{part}")?,
                }
            }
            Ok(())
        };
        match self {
            SearchExpr::And(parts) => join(f, parts, " "),
            SearchExpr::Or(parts) => join(f, parts, " | "),
            SearchExpr::Not(inner) => match inner.as_ref() {
                SearchExpr::And(_) | SearchExpr::Or(_) => write!(f, "!({inner})"),
                _ => write!(f, "!{inner}"),
            },
            SearchExpr::Term(t) => write!(f, "{t}"),
        }
    }
}

/// Parses a search query. An empty or blank query is `Ok(None)`.
pub fn parse(query: &str) -> Result<Option<SearchExpr>, SearchError> {
    let chars: Vec<char> = query.chars().collect();
    if chars.len() > MAX_QUERY_CHARS {
        return Err(SearchError {
            column: MAX_QUERY_CHARS + 1,
            message: format!(
                "query is {} characters long; the limit is {MAX_QUERY_CHARS}",
                chars.len()
            ),
        });
    }
    let mut parser = Parser {
        chars,
        pos: 0,
        terms: 0,
    };
    parser.skip_ws();
    if parser.at_end() {
        return Ok(None);
    }
    let expr = parser.or(0)?;
    parser.skip_ws();
    match parser.peek() {
        None => Ok(Some(expr)),
        Some(')') => Err(parser.error_here("unbalanced ')'")),
        Some(c) => Err(parser.error_here(format!("unexpected '{c}'"))),
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    terms: usize,
}

/// Characters that end a field name or a bare value.
fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '|' | ',' | '"')
}

fn is_op_start(c: char) -> bool {
    matches!(c, '=' | '!' | '>' | '<' | ':')
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn error_at(&self, pos: usize, message: impl Into<String>) -> SearchError {
        SearchError {
            column: pos + 1,
            message: message.into(),
        }
    }

    fn error_here(&self, message: impl Into<String>) -> SearchError {
        self.error_at(self.pos, message)
    }

    fn nesting(&self, depth: usize) -> Result<(), SearchError> {
        if depth > MAX_NESTING {
            return Err(self.error_here(format!("nesting deeper than {MAX_NESTING} levels")));
        }
        Ok(())
    }

    fn or(&mut self, depth: usize) -> Result<SearchExpr, SearchError> {
        let mut parts = vec![self.and(depth)?];
        loop {
            self.skip_ws();
            if self.peek() != Some('|') {
                break;
            }
            self.pos += 1;
            self.skip_ws();
            if self.at_end() || self.peek() == Some(')') {
                return Err(self.error_here("expected a term after '|'"));
            }
            parts.push(self.and(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            SearchExpr::Or(parts)
        })
    }

    fn and(&mut self, depth: usize) -> Result<SearchExpr, SearchError> {
        let mut parts = vec![self.unary(depth)?];
        loop {
            let save = self.pos;
            let spaced = self.skip_ws();
            match self.peek() {
                None | Some('|') | Some(')') => {
                    self.pos = save;
                    break;
                }
                Some(_) if !spaced && parts.last().is_some() => {
                    return Err(self.error_here("expected whitespace between terms"));
                }
                Some(_) => parts.push(self.unary(depth)?),
            }
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            SearchExpr::And(parts)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<SearchExpr, SearchError> {
        match self.peek() {
            Some('!') => {
                self.nesting(depth + 1)?;
                self.pos += 1;
                if self.peek().is_none_or(char::is_whitespace) {
                    return Err(self.error_here("expected a term after '!'"));
                }
                Ok(SearchExpr::Not(Box::new(self.unary(depth + 1)?)))
            }
            Some('(') => {
                self.nesting(depth + 1)?;
                let open = self.pos;
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(')') {
                    return Err(self.error_here("empty parentheses"));
                }
                if self.at_end() {
                    return Err(self.error_at(open, "unclosed '('"));
                }
                let inner = self.or(depth + 1)?;
                self.skip_ws();
                if self.peek() != Some(')') {
                    return Err(self.error_at(open, "unclosed '('"));
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(')') => Err(self.error_here("unbalanced ')'")),
            Some('|') => Err(self.error_here("expected a term before '|'")),
            Some(_) => self.term().map(SearchExpr::Term),
            None => Err(self.error_here("expected a term")),
        }
    }

    fn term(&mut self) -> Result<Term, SearchError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(self.error_here(format!("more than {MAX_TERMS} terms")));
        }
        let start = self.pos;
        if self.peek() == Some('"') {
            let word = self.quoted()?;
            return Ok(name_word(word, start));
        }
        while self
            .peek()
            .is_some_and(|c| !is_delimiter(c) && !is_op_start(c))
        {
            self.pos += 1;
        }
        let head: String = self.chars[start..self.pos].iter().collect();
        let op = self.op();
        let Some(op) = op else {
            // No operator: a bare word, a `tags.k` existence test, or `deleted`.
            if self.peek().is_some_and(|c| !is_delimiter(c)) {
                return Err(self.error_here(format!("unexpected '{}'", self.chars[self.pos])));
            }
            return Ok(match SearchField::parse(&head) {
                Some(field @ (SearchField::Tag(_) | SearchField::Label(_))) => Term {
                    field,
                    op: SearchOp::Exists,
                    value: SearchValue::None,
                    column: start + 1,
                },
                Some(SearchField::Deleted) => Term {
                    field: SearchField::Deleted,
                    op: SearchOp::Exists,
                    value: SearchValue::None,
                    column: start + 1,
                },
                _ => name_word(head, start),
            });
        };
        if head.is_empty() {
            return Err(self.error_at(start, format!("expected a field before '{}'", op.as_str())));
        }
        let field = SearchField::parse(&head)
            .ok_or_else(|| self.error_at(start, format!("unknown field '{head}'")))?;
        let value_start = self.pos;
        let values = self.values()?;
        let value = typed_value(&field, op, values, value_start)?;
        Ok(Term {
            field,
            op,
            value,
            column: start + 1,
        })
    }

    fn op(&mut self) -> Option<SearchOp> {
        let two: String = self.chars.iter().skip(self.pos).take(2).collect();
        let (op, len) = match two.as_str() {
            "!=" => (SearchOp::Ne, 2),
            ">=" => (SearchOp::Ge, 2),
            "<=" => (SearchOp::Le, 2),
            _ => match self.peek()? {
                '=' => (SearchOp::Eq, 1),
                '>' => (SearchOp::Gt, 1),
                '<' => (SearchOp::Lt, 1),
                ':' => (SearchOp::Contains, 1),
                _ => return None,
            },
        };
        self.pos += len;
        Some(op)
    }

    /// `value := quoted | bare ("," bare)*`, each with its start position.
    fn values(&mut self) -> Result<Vec<(String, usize)>, SearchError> {
        let mut out = Vec::new();
        loop {
            let start = self.pos;
            let value = if self.peek() == Some('"') {
                self.quoted()?
            } else {
                while self.peek().is_some_and(|c| {
                    !c.is_whitespace() && !matches!(c, '(' | ')' | '|' | ',' | '"')
                }) {
                    self.pos += 1;
                }
                self.chars[start..self.pos].iter().collect()
            };
            if value.is_empty() {
                return Err(self.error_at(start, "expected a value"));
            }
            out.push((value, start));
            if self.peek() == Some(',') {
                self.pos += 1;
                continue;
            }
            return Ok(out);
        }
    }

    fn quoted(&mut self) -> Result<String, SearchError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(self.error_at(open, "unterminated quoted value")),
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c) => out.push(c),
                        None => return Err(self.error_at(open, "unterminated quoted value")),
                    }
                    self.pos += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

/// A bare word matches names starting with it (`api` → `name=api*`).
fn name_word(word: String, start: usize) -> Term {
    let pattern = if word.ends_with('*') {
        word
    } else {
        format!("{word}*")
    };
    Term {
        field: SearchField::Name,
        op: SearchOp::Eq,
        value: SearchValue::Text(vec![pattern]),
        column: start + 1,
    }
}

fn err(pos: usize, message: impl Into<String>) -> SearchError {
    SearchError {
        column: pos + 1,
        message: message.into(),
    }
}

/// Checks a term's values against its field and operator.
fn typed_value(
    field: &SearchField,
    op: SearchOp,
    values: Vec<(String, usize)>,
    value_start: usize,
) -> Result<SearchValue, SearchError> {
    let single_time = |values: &[(String, usize)]| -> Result<TimeValue, SearchError> {
        match values {
            [(v, at)] => parse_time(v).ok_or_else(|| {
                err(
                    *at,
                    format!("'{v}' is not a time (use now-7d, now-12h or RFC 3339)"),
                )
            }),
            _ => Err(err(value_start, "a time comparison takes one value")),
        }
    };
    match field {
        SearchField::Created | SearchField::Updated | SearchField::Deleted => {
            if !op.is_ordering() {
                return Err(err(
                    value_start,
                    format!("{field} takes >, >=, < or <= and a time"),
                ));
            }
            Ok(SearchValue::Time(single_time(&values)?))
        }
        SearchField::Health => {
            if !matches!(op, SearchOp::Eq | SearchOp::Ne) {
                return Err(err(value_start, "health takes = or !="));
            }
            let mut out = Vec::new();
            for (v, at) in values {
                let h = v.parse::<crate::model::Health>().map_err(|_| {
                    err(
                        at,
                        format!("'{v}' is not a health (healthy, warning, unhealthy, unknown)"),
                    )
                })?;
                out.push(h);
            }
            Ok(SearchValue::Health(out))
        }
        SearchField::Id => {
            if !matches!(op, SearchOp::Eq | SearchOp::Ne) {
                return Err(err(value_start, "id takes = or !="));
            }
            let mut out = Vec::new();
            for (v, at) in values {
                out.push(Uuid::parse_str(&v).map_err(|_| err(at, format!("'{v}' is not a UUID")))?);
            }
            Ok(SearchValue::Ids(out))
        }
        SearchField::Related => {
            if op != SearchOp::Eq {
                return Err(err(value_start, "related takes ="));
            }
            parse_related(values).map(SearchValue::Related)
        }
        SearchField::Name
        | SearchField::Type
        | SearchField::Class
        | SearchField::Namespace
        | SearchField::Status
        | SearchField::Source
        | SearchField::Tag(_)
        | SearchField::Label(_)
        | SearchField::Config(_)
        | SearchField::Property(_) => {
            if op.is_ordering() && values.len() > 1 {
                return Err(err(value_start, "an ordering comparison takes one value"));
            }
            Ok(SearchValue::Text(
                values.into_iter().map(|(v, _)| v).collect(),
            ))
        }
    }
}

fn parse_related(values: Vec<(String, usize)>) -> Result<RelatedSpec, SearchError> {
    let mut iter = values.into_iter();
    let Some((root, at)) = iter.next() else {
        return Err(err(0, "related needs an item id"));
    };
    let root = Uuid::parse_str(&root).map_err(|_| err(at, format!("'{root}' is not a UUID")))?;
    let mut spec = RelatedSpec {
        root,
        direction: RelatedDirection::Both,
        depth: 1,
        relation: RelatedRelation::Both,
    };
    for (option, at) in iter {
        let (key, value) = option.split_once('=').ok_or_else(|| {
            err(
                at,
                format!("expected direction=, depth= or relation=, got '{option}'"),
            )
        })?;
        let value_at = at + key.chars().count() + 1;
        match key.to_ascii_lowercase().as_str() {
            "direction" => {
                spec.direction = match value.to_ascii_lowercase().as_str() {
                    "incoming" | "upstream" => RelatedDirection::Incoming,
                    "outgoing" | "downstream" => RelatedDirection::Outgoing,
                    "both" => RelatedDirection::Both,
                    _ => {
                        return Err(err(
                            value_at,
                            format!("direction must be incoming, outgoing or both, not '{value}'"),
                        ));
                    }
                }
            }
            "relation" => {
                spec.relation = match value.to_ascii_lowercase().as_str() {
                    "hard" => RelatedRelation::Hard,
                    "soft" => RelatedRelation::Soft,
                    "both" => RelatedRelation::Both,
                    _ => {
                        return Err(err(
                            value_at,
                            format!("relation must be hard, soft or both, not '{value}'"),
                        ));
                    }
                }
            }
            "depth" => {
                spec.depth = value
                    .parse::<u32>()
                    .ok()
                    .filter(|d| (1..=MAX_RELATED_DEPTH).contains(d))
                    .ok_or_else(|| {
                        err(
                            value_at,
                            format!("depth must be 1 to {MAX_RELATED_DEPTH}, not '{value}'"),
                        )
                    })?;
            }
            _ => {
                return Err(err(
                    at,
                    format!("unknown related option '{key}' (direction, depth, relation)"),
                ));
            }
        }
    }
    Ok(spec)
}

/// Parses `now`, `now-7d`, `now+1h` (units s, m, h, d, w) or RFC 3339
/// (a bare `YYYY-MM-DD` means midnight UTC).
pub fn parse_time(text: &str) -> Option<TimeValue> {
    let lower = text.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("now") {
        if rest.is_empty() {
            return Some(TimeValue::Relative(Duration::zero()));
        }
        let (sign, amount) = match rest.split_at(1) {
            ("-", a) => (-1, a),
            ("+", a) => (1, a),
            _ => return None,
        };
        let unit = amount.chars().last()?;
        let n: i64 = amount[..amount.len() - unit.len_utf8()].parse().ok()?;
        let d = match unit {
            's' => Duration::try_seconds(n)?,
            'm' => Duration::try_minutes(n)?,
            'h' => Duration::try_hours(n)?,
            'd' => Duration::try_days(n)?,
            'w' => Duration::try_weeks(n)?,
            _ => return None,
        };
        return Some(TimeValue::Relative(d * sign));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(TimeValue::Absolute(t.with_timezone(&Utc)));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| TimeValue::Absolute(t.and_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Health;

    fn term(query: &str) -> Term {
        match parse(query) {
            Ok(Some(SearchExpr::Term(t))) => t,
            other => panic!("{query}: {other:?}"),
        }
    }

    fn error(query: &str) -> SearchError {
        parse(query).expect_err(query)
    }

    #[test]
    fn the_spec_example_parses() {
        let q = "type=Kubernetes::Pod health=unhealthy,warning (tags.team=a | tags.team=b) updated>now-1d";
        let Ok(Some(SearchExpr::And(parts))) = parse(q) else {
            panic!("not an AND");
        };
        assert_eq!(parts.len(), 4);
        assert_eq!(
            parts[0],
            SearchExpr::Term(Term {
                field: SearchField::Type,
                op: SearchOp::Eq,
                value: SearchValue::Text(vec!["Kubernetes::Pod".into()]),
                column: 1,
            })
        );
        assert!(matches!(
            &parts[1],
            SearchExpr::Term(Term { value: SearchValue::Health(h), .. }) if h == &[Health::Unhealthy, Health::Warning]
        ));
        assert!(matches!(&parts[2], SearchExpr::Or(or) if or.len() == 2));
        assert!(matches!(
            &parts[3],
            SearchExpr::Term(Term { field: SearchField::Updated, op: SearchOp::Gt,
                value: SearchValue::Time(TimeValue::Relative(d)), column: 75 }) if *d == Duration::days(-1)
        ));
    }

    #[test]
    fn words_tags_and_negation() {
        assert_eq!(
            term("api").value,
            SearchValue::Text(vec!["api*".to_string()])
        );
        assert_eq!(term("tags.team").op, SearchOp::Exists);
        assert_eq!(
            term("tags.app.kubernetes.io/name=web").field,
            SearchField::Tag("app.kubernetes.io/name".into())
        );
        assert_eq!(
            term("config.spec.replicas>=2").field,
            SearchField::Config(vec!["spec".into(), "replicas".into()])
        );
        assert_eq!(
            term(r#"name="a b \"c\"""#).value,
            SearchValue::Text(vec![r#"a b "c""#.to_string()])
        );
        let Ok(Some(SearchExpr::Not(inner))) = parse("!tags.team") else {
            panic!("not a NOT");
        };
        assert!(matches!(
            *inner,
            SearchExpr::Term(Term {
                op: SearchOp::Exists,
                ..
            })
        ));
        assert!(
            parse("deleted")
                .ok()
                .flatten()
                .is_some_and(|e| e.mentions_deleted())
        );
        assert!(parse("  ").ok().is_some_and(|e| e.is_none()));
    }

    #[test]
    fn related_walks() {
        let id = Uuid::nil();
        let t = term(&format!(
            "related={id},direction=outgoing,depth=3,relation=hard"
        ));
        assert_eq!(
            t.value,
            SearchValue::Related(RelatedSpec {
                root: id,
                direction: RelatedDirection::Outgoing,
                depth: 3,
                relation: RelatedRelation::Hard,
            })
        );
        assert_eq!(error(&format!("related={id},depth=11")).column, 52);
        assert!(
            error(&format!("related={id},sideways=1"))
                .message
                .contains("unknown related option")
        );
    }

    #[test]
    fn errors_point_at_their_column() {
        for (query, column, needle) in [
            ("type=", 6, "expected a value"),
            ("health=sick", 8, "not a health"),
            ("bogus=1", 1, "unknown field"),
            ("(type=a", 1, "unclosed"),
            ("type=a)", 7, "unbalanced"),
            ("type=a |", 9, "after '|'"),
            ("updated>yesterday", 9, "not a time"),
            ("updated=now-1d", 9, "takes >"),
            ("id=42", 4, "not a UUID"),
            ("=x", 1, "expected a field"),
            ("name=\"open", 6, "unterminated"),
            ("()", 2, "empty parentheses"),
        ] {
            let e = error(query);
            assert_eq!(e.column, column, "{query}: {e}");
            assert!(e.message.contains(needle), "{query}: {e}");
        }
    }

    #[test]
    fn limits_are_enforced() {
        let long = "a".repeat(MAX_QUERY_CHARS + 1);
        assert!(error(&long).message.contains("limit is 2000"));
        let many = vec!["a"; MAX_TERMS + 1].join(" ");
        assert!(error(&many).message.contains("more than 50 terms"));
        assert!(parse(&vec!["a"; MAX_TERMS].join(" ")).is_ok());
        let deep = format!(
            "{}a{}",
            "(".repeat(MAX_NESTING + 1),
            ")".repeat(MAX_NESTING + 1)
        );
        assert!(error(&deep).message.contains("nesting"));
        let ok = format!("{}a{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert!(parse(&ok).is_ok());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn leaf() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-z][a-z0-9-]{0,8}\\*?".prop_map(|w| w),
                (
                    "(name|type|class|namespace|status|source)",
                    "(=|!=|:)",
                    "[A-Za-z0-9:*_-]{1,10}(,[a-z0-9]{1,5}){0,2}"
                )
                    .prop_map(|(f, o, v)| format!("{f}{o}{v}")),
                ("(tags|labels)\\.[a-z][a-z./-]{0,8}", "(=[a-z0-9]{1,6})?")
                    .prop_map(|(f, v)| format!("{f}{v}")),
                "health(=|!=)(healthy|warning|unhealthy|unknown)(,healthy){0,1}",
                "(created|updated)(>|>=|<|<=)now-[0-9]{1,3}(s|m|h|d|w)",
                "config\\.[a-z]{1,5}(\\.[a-z]{1,5}){0,2}(=|>|<)[0-9]{1,4}",
                Just(r#"name="a b|c""#.to_string()),
            ]
        }

        fn query() -> impl Strategy<Value = String> {
            leaf().prop_recursive(4, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 2..4).prop_map(|v| v.join(" ")),
                    prop::collection::vec(inner.clone(), 2..4).prop_map(|v| v.join(" | ")),
                    inner.clone().prop_map(|q| format!("({q})")),
                    inner.prop_map(|q| format!("!({q})")),
                ]
            })
        }

        proptest! {
            #[test]
            fn arbitrary_text_never_panics_and_errors_point_inside(text in "\\PC{0,60}") {
                if let Err(e) = parse(&text) {
                    prop_assert!(e.column >= 1 && e.column <= text.chars().count() + 1, "{e:?}");
                }
            }

            #[test]
            fn rendering_round_trips(q in query()) {
                let parsed = parse(&q);
                prop_assume!(matches!(parsed, Ok(Some(_))));
                let Ok(Some(expr)) = parsed else { unreachable!() };
                let rendered = expr.to_string();
                let again = parse(&rendered);
                prop_assert!(matches!(again, Ok(Some(_))), "{rendered}: {again:?}");
                let Ok(Some(again)) = again else { unreachable!() };
                prop_assert_eq!(again.to_string(), rendered);
            }
        }
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_time("now-7d"),
            Some(TimeValue::Relative(Duration::days(-7)))
        );
        assert_eq!(
            parse_time("now+90m"),
            Some(TimeValue::Relative(Duration::minutes(90)))
        );
        assert!(matches!(
            parse_time("2026-11-01"),
            Some(TimeValue::Absolute(_))
        ));
        assert!(matches!(
            parse_time("2026-11-01T10:00:00Z"),
            Some(TimeValue::Absolute(_))
        ));
        assert_eq!(parse_time("now-"), None);
        assert_eq!(parse_time("now-7y"), None);
        assert_eq!(parse_time("now-99999999999999999d"), None);
    }
}
