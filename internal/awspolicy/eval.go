package awspolicy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Request is one call to AWS, as the service authorises it.
type Request struct {
	Principal Principal
	// Action is service:Operation, for example kms:Decrypt.
	Action string
	// Resource is the ARN the action is on.
	Resource string
	// Context holds the request's condition keys (for example
	// aws:SecureTransport, kms:ViaService) and their values; a key that
	// is absent is absent from the request.
	Context map[string]string
}

// Principal is who makes a request: an IAM principal (ARN), or an AWS
// service, or a web identity.
type Principal struct {
	// ARN of a role (standing for its sessions), a user or an account root.
	ARN string
	// Service is a service principal such as s3.amazonaws.com.
	Service string
	// Federated is a web identity provider's ARN.
	Federated string
}

// Account is the account of an IAM principal, "" for the others.
func (p Principal) Account() string {
	return arnAccount(p.ARN)
}

func (p Principal) String() string {
	switch {
	case p.ARN != "":
		return p.ARN
	case p.Service != "":
		return "service " + p.Service
	}
	return "web identity of " + p.Federated
}

// Effect is what one policy says about a request.
type Effect int

const (
	// NotAllowed is the answer when no statement matches (an implicit deny).
	NotAllowed Effect = iota
	// Allowed is the answer when an Allow statement matches and no Deny does.
	Allowed
	// Denied is the answer when a Deny statement matches.
	Denied
)

// Result is one policy's answer.
type Result struct {
	Effect Effect
	// Sid is the deciding statement's Sid (or #index without one).
	Sid string
	// ViaAccount: every matching Allow names the principal's account,
	// not the principal; in a resource policy, a delegation to the
	// account's identity policies.
	ViaAccount bool
}

// Evaluate applies the policy to the request. Statements without a
// Principal (identity policies) apply to whoever holds the policy.
func (p Policy) Evaluate(r Request) (Result, error) {
	ctx := make(map[string]string, len(r.Context))
	for k, v := range r.Context {
		ctx[strings.ToLower(k)] = v
	}
	res := Result{}
	for i, s := range p.Statement {
		match, viaAccount, err := s.matches(r, ctx)
		if err != nil {
			return Result{}, fmt.Errorf("%s statement %s: %w", p.Name, sid(s, i), err)
		}
		if !match {
			continue
		}
		if s.Effect == "Deny" {
			return Result{Effect: Denied, Sid: sid(s, i)}, nil
		}
		// A statement naming the principal itself beats one naming its
		// account.
		if res.Effect != Allowed || (res.ViaAccount && !viaAccount) {
			res = Result{Effect: Allowed, Sid: sid(s, i), ViaAccount: viaAccount}
		}
	}
	return res, nil
}

func sid(s Statement, i int) string {
	if s.Sid != "" {
		return s.Sid
	}
	return fmt.Sprintf("#%d", i)
}

// matches says whether the statement applies to the request, and whether
// it names the principal only through its account.
func (s Statement) matches(r Request, ctx map[string]string) (match, viaAccount bool, err error) {
	if s.Principal != nil {
		if match, viaAccount = s.Principal.match(r.Principal); !match {
			return false, false, nil
		}
	}
	if s.Action != nil && !anyMatch(s.Action, r.Action, matchAction) {
		return false, false, nil
	}
	if s.NotAction != nil && anyMatch(s.NotAction, r.Action, matchAction) {
		return false, false, nil
	}
	if s.Resource != nil && !anyMatch(s.Resource, r.Resource, matchResource) {
		return false, false, nil
	}
	if s.NotResource != nil && anyMatch(s.NotResource, r.Resource, matchResource) {
		return false, false, nil
	}
	for _, c := range s.Condition {
		ok, err := c.holds(ctx)
		if err != nil || !ok {
			return false, false, err
		}
	}
	return true, viaAccount, nil
}

var accountID = regexp.MustCompile(`^[0-9]{12}$`)

// match says whether the principal is one of these, and whether only
// through its account.
func (ps *Principals) match(p Principal) (match, viaAccount bool) {
	if ps.Everyone {
		return true, false
	}
	if p.ARN != "" {
		for _, a := range ps.AWS {
			if a == p.ARN {
				return true, false
			}
		}
		for _, a := range ps.AWS {
			account := a
			if !accountID.MatchString(a) {
				account = rootAccount(a)
			}
			if account != "" && account == p.Account() {
				return true, true
			}
		}
	}
	if p.Service != "" && contains(ps.Service, p.Service) {
		return true, false
	}
	if p.Federated != "" && contains(ps.Federated, p.Federated) {
		return true, false
	}
	return false, false
}

// rootAccount is the account of an account root ARN
// (arn:<partition>:iam::<account>:root), "" for other ARNs.
func rootAccount(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) == 6 && parts[0] == "arn" && parts[2] == "iam" && parts[5] == "root" {
		return parts[4]
	}
	return ""
}

func arnAccount(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) == 6 && parts[0] == "arn" {
		return parts[4]
	}
	return ""
}

func contains(list []string, v string) bool {
	for _, e := range list {
		if e == v {
			return true
		}
	}
	return false
}

func anyMatch(patterns []string, value string, match func(pattern, value string) bool) bool {
	for _, p := range patterns {
		if match(p, value) {
			return true
		}
	}
	return false
}

// matchAction: actions are case-insensitive, service prefix included.
func matchAction(pattern, action string) bool {
	return glob(strings.ToLower(pattern), strings.ToLower(action))
}

// matchResource: "*" is every resource; otherwise an ARN matched part by
// part.
func matchResource(pattern, resource string) bool {
	return pattern == "*" || matchARN(pattern, resource)
}

// matchARN compares the six colon-separated parts of two ARNs one by one,
// with wildcards (case-sensitive), as ArnLike does: a wildcard does not
// reach across a colon, except in the last part.
func matchARN(pattern, arn string) bool {
	pp, ap := strings.SplitN(pattern, ":", 6), strings.SplitN(arn, ":", 6)
	if len(pp) != 6 || len(ap) != 6 {
		return false
	}
	for i := range pp {
		if !glob(pp[i], ap[i]) {
			return false
		}
	}
	return true
}

// glob matches value against pattern, where * is any run of characters
// and ? exactly one.
func glob(pattern, value string) bool {
	p, v := []rune(pattern), []rune(value)
	pi, vi := 0, 0
	star, mark := -1, 0
	for vi < len(v) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, vi
			pi++
		case pi < len(p) && (p[pi] == '?' || p[pi] == v[vi]):
			pi++
			vi++
		case star >= 0:
			pi = star + 1
			mark++
			vi = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// holds evaluates one condition key against the request context.
func (c Condition) holds(ctx map[string]string) (bool, error) {
	value, present := ctx[strings.ToLower(c.Key)]
	if c.Operator == "Null" {
		// "true": the key is absent; "false": it is present.
		return (c.Values[0] == "true") == !present, nil
	}
	op, ifExists := strings.CutSuffix(c.Operator, "IfExists")
	negated := strings.Contains(op, "Not")
	if !present {
		// A missing key: IfExists and negated operators hold, the rest
		// do not.
		return ifExists || negated, nil
	}
	base := strings.Replace(op, "Not", "", 1)
	any := false
	for _, want := range c.Values {
		m, err := compare(base, want, value)
		if err != nil {
			return false, fmt.Errorf("condition %s %s: %w", c.Operator, c.Key, err)
		}
		if m {
			any = true
			break
		}
	}
	return any != negated, nil
}

// compare applies a positive operator to one policy value and the
// request's value.
func compare(op, want, got string) (bool, error) {
	switch op {
	case "StringEquals":
		return want == got, nil
	case "StringEqualsIgnoreCase":
		return strings.EqualFold(want, got), nil
	case "StringLike":
		return glob(want, got), nil
	case "ArnEquals", "ArnLike":
		return matchARN(want, got), nil
	case "Bool":
		return strings.EqualFold(want, got), nil
	}
	w, err := strconv.ParseFloat(want, 64)
	if err != nil {
		return false, fmt.Errorf("policy value %q is not a number", want)
	}
	g, err := strconv.ParseFloat(got, 64)
	if err != nil {
		return false, fmt.Errorf("request value %q is not a number", got)
	}
	switch op {
	case "NumericEquals":
		return g == w, nil
	case "NumericLessThan":
		return g < w, nil
	case "NumericLessThanEquals":
		return g <= w, nil
	case "NumericGreaterThan":
		return g > w, nil
	case "NumericGreaterThanEquals":
		return g >= w, nil
	}
	return false, fmt.Errorf("operator %s is not modelled", op)
}
