// Package awspolicy evaluates the AWS policy documents this program writes
// (IAM role policies, role trust policies, KMS key policies, S3 bucket
// policies) for one request, the way AWS decides it within an account and
// across accounts, so that tests can ask "may this principal do this to
// that resource?" of rendered documents, with no cloud.
//
// What it models:
//   - Effect Allow and Deny; an explicit Deny in any policy wins, and
//     nothing allowed is an implicit deny.
//   - Action and NotAction, with * and ? wildcards, case-insensitive.
//   - Resource and NotResource: "*", or ARNs whose colon-separated parts
//     are matched one by one with * and ? (case-sensitive).
//   - Principal: "*" (and {"AWS": "*"}), AWS account IDs and account root
//     ARNs (every principal of that account, as a delegation to its IAM
//     policies), IAM role and user ARNs, Service and Federated principals.
//   - Condition operators: String(Not)Equals, String(Not)EqualsIgnoreCase,
//     String(Not)Like, Arn(Not)Equals, Arn(Not)Like, Bool, Numeric*, Null,
//     and the ...IfExists form of each but Null; values of a key are ORed,
//     keys and operators ANDed; a missing key makes a positive operator
//     false and a negated one true. Condition key names are
//     case-insensitive.
//   - Combining policies (Authorize): identity and resource policy in one
//     account, where either may allow (S3); a resource policy that must
//     allow, alone or by naming the account (KMS key policies, role trust
//     policies); across accounts, both must allow.
//
// What it does not model, and rejects where a document uses it:
// NotPrincipal, policy variables (${...}), ForAnyValue/ForAllValues and
// multi-valued context keys, Date and IpAddress operators, policy versions
// other than 2012-10-17. Not modelled at all: service control, resource
// control and session policies, permissions boundaries, grants, VPC
// endpoint policies, S3 ACLs and Block Public Access, the assumed-role
// session ARN (a role's ARN stands for its sessions), and which actions
// and condition keys a service actually supports: the caller states the
// request, including its context, as the service would present it.
package awspolicy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Version is the only policy language version modelled.
const Version = "2012-10-17"

// Policy is a parsed policy document.
type Policy struct {
	// Name says which document this is, in decisions' reasons.
	Name      string
	Version   string
	Statement []Statement
}

// Statement is one statement, with single values turned into lists.
type Statement struct {
	Sid    string
	Effect string
	// Principal is nil in an identity policy.
	Principal             *Principals
	Action, NotAction     []string
	Resource, NotResource []string
	Condition             []Condition
}

// Principals is a statement's Principal element.
type Principals struct {
	// Everyone is "*", or {"AWS": "*"}.
	Everyone                bool
	AWS, Service, Federated []string
}

// Condition is one key of one operator of a Condition block.
type Condition struct {
	// Operator is as written, for example StringEqualsIfExists.
	Operator string
	Key      string
	Values   []string
}

// Parse reads a JSON policy document; name labels it in reasons. It fails
// on anything the package does not model, rather than guess.
func Parse(name, doc string) (Policy, error) {
	var raw struct {
		Version   string          `json:"Version"`
		ID        string          `json:"Id"`
		Statement json.RawMessage `json:"Statement"`
	}
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return Policy{}, fmt.Errorf("%s: not a policy document: %w", name, err)
	}
	if raw.Version != Version {
		return Policy{}, fmt.Errorf("%s: Version %q; only %s is modelled", name, raw.Version, Version)
	}
	if strings.Contains(doc, "${") {
		return Policy{}, fmt.Errorf("%s: policy variables (${...}) are not modelled", name)
	}
	var stmts []json.RawMessage
	if err := unmarshalOneOrMany(raw.Statement, &stmts); err != nil || len(stmts) == 0 {
		return Policy{}, fmt.Errorf("%s: Statement must be a statement or a non-empty list of them", name)
	}
	p := Policy{Name: name, Version: raw.Version}
	for i, text := range stmts {
		s, err := parseStatement(text)
		if err != nil {
			return Policy{}, fmt.Errorf("%s: statement %d: %w", name, i, err)
		}
		p.Statement = append(p.Statement, s)
	}
	return p, nil
}

// MustParse is Parse for documents known to be valid, such as test
// fixtures; it panics on error.
func MustParse(name, doc string) Policy {
	p, err := Parse(name, doc)
	if err != nil {
		panic(err)
	}
	return p
}

var statementKeys = map[string]bool{
	"Sid": true, "Effect": true, "Principal": true, "Action": true, "NotAction": true,
	"Resource": true, "NotResource": true, "Condition": true,
}

func parseStatement(text json.RawMessage) (Statement, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(text, &fields); err != nil {
		return Statement{}, err
	}
	for k := range fields {
		if !statementKeys[k] {
			return Statement{}, fmt.Errorf("element %s is not modelled", k)
		}
	}
	var s Statement
	if v, ok := fields["Sid"]; ok {
		if err := json.Unmarshal(v, &s.Sid); err != nil {
			return s, fmt.Errorf("statement id (Sid): %w", err)
		}
	}
	if err := json.Unmarshal(fields["Effect"], &s.Effect); err != nil || (s.Effect != "Allow" && s.Effect != "Deny") {
		return s, fmt.Errorf("Effect %s: want Allow or Deny", fields["Effect"])
	}
	lists := []struct {
		key string
		dst *[]string
	}{
		{"Action", &s.Action}, {"NotAction", &s.NotAction},
		{"Resource", &s.Resource}, {"NotResource", &s.NotResource},
	}
	for _, l := range lists {
		if v, ok := fields[l.key]; ok {
			if err := unmarshalOneOrMany(v, l.dst); err != nil || len(*l.dst) == 0 {
				return s, fmt.Errorf("%s must be a string or a non-empty list of strings", l.key)
			}
		}
	}
	if (s.Action == nil) == (s.NotAction == nil) {
		return s, fmt.Errorf("exactly one of Action and NotAction is required")
	}
	if s.Resource != nil && s.NotResource != nil {
		return s, fmt.Errorf("a statement with both Resource and NotResource")
	}
	if v, ok := fields["Principal"]; ok {
		p, err := parsePrincipal(v)
		if err != nil {
			return s, err
		}
		s.Principal = p
	}
	if v, ok := fields["Condition"]; ok {
		c, err := parseConditions(v)
		if err != nil {
			return s, err
		}
		s.Condition = c
	}
	return s, nil
}

func parsePrincipal(v json.RawMessage) (*Principals, error) {
	var star string
	if json.Unmarshal(v, &star) == nil {
		if star != "*" {
			return nil, fmt.Errorf("Principal %q: a string principal must be \"*\"", star)
		}
		return &Principals{Everyone: true}, nil
	}
	var byKind map[string]json.RawMessage
	if err := json.Unmarshal(v, &byKind); err != nil {
		return nil, fmt.Errorf("Principal: %w", err)
	}
	p := &Principals{}
	for kind, raw := range byKind {
		var values []string
		if err := unmarshalOneOrMany(raw, &values); err != nil {
			return nil, fmt.Errorf("Principal %s: %w", kind, err)
		}
		switch kind {
		case "AWS":
			for _, a := range values {
				if a == "*" {
					p.Everyone = true
				} else {
					p.AWS = append(p.AWS, a)
				}
			}
		case "Service":
			p.Service = append(p.Service, values...)
		case "Federated":
			p.Federated = append(p.Federated, values...)
		default:
			return nil, fmt.Errorf("Principal kind %q is not modelled", kind)
		}
	}
	return p, nil
}

// operatorPattern is the condition operators modelled, with IfExists.
var operatorPattern = regexp.MustCompile(`^(StringEquals|StringNotEquals|StringEqualsIgnoreCase|StringNotEqualsIgnoreCase|StringLike|StringNotLike|ArnEquals|ArnNotEquals|ArnLike|ArnNotLike|Bool|NumericEquals|NumericNotEquals|NumericLessThan|NumericLessThanEquals|NumericGreaterThan|NumericGreaterThanEquals)(IfExists)?$|^Null$`)

func parseConditions(v json.RawMessage) ([]Condition, error) {
	var block map[string]map[string]json.RawMessage
	if err := json.Unmarshal(v, &block); err != nil {
		return nil, fmt.Errorf("Condition: %w", err)
	}
	var out []Condition
	for op, keys := range block {
		if !operatorPattern.MatchString(op) {
			return nil, fmt.Errorf("condition operator %s is not modelled", op)
		}
		for key, raw := range keys {
			values, err := conditionValues(raw)
			if err != nil {
				return nil, fmt.Errorf("condition %s %s: %w", op, key, err)
			}
			if op == "Null" {
				for _, v := range values {
					if v != "true" && v != "false" {
						return nil, fmt.Errorf("condition Null %s: %q is neither true nor false", key, v)
					}
				}
			}
			out = append(out, Condition{Operator: op, Key: key, Values: values})
		}
	}
	// Map order is random; a stable order keeps reasons reproducible.
	sort.Slice(out, func(i, j int) bool {
		if out[i].Operator != out[j].Operator {
			return out[i].Operator < out[j].Operator
		}
		return out[i].Key < out[j].Key
	})
	return out, nil
}

// conditionValues reads a condition's value: a string, boolean or number,
// or a non-empty list of them, as strings.
func conditionValues(raw json.RawMessage) ([]string, error) {
	var items []json.RawMessage
	if err := unmarshalOneOrMany(raw, &items); err != nil || len(items) == 0 {
		return nil, fmt.Errorf("want a value or a non-empty list of values")
	}
	out := make([]string, 0, len(items))
	for _, item := range items {
		dec := json.NewDecoder(bytes.NewReader(item))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		switch t := v.(type) {
		case string:
			out = append(out, t)
		case bool:
			out = append(out, fmt.Sprint(t))
		case json.Number:
			out = append(out, t.String())
		default:
			return nil, fmt.Errorf("%s is not a string, boolean or number", item)
		}
	}
	return out, nil
}

// unmarshalOneOrMany decodes a JSON value or a list of them into a slice.
func unmarshalOneOrMany[T any](raw json.RawMessage, dst *[]T) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		return json.Unmarshal(raw, dst)
	}
	var one T
	if err := json.Unmarshal(raw, &one); err != nil {
		return err
	}
	*dst = []T{one}
	return nil
}
