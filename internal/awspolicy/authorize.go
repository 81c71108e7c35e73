package awspolicy

import "fmt"

// Access is what AWS consults for one request.
type Access struct {
	// Identity are the principal's identity policies (a role's inline and
	// attached policies); none for a service or a web identity.
	Identity []Policy
	// Resource is the resource's own policy (key, bucket or trust policy);
	// nil if it has none.
	Resource *Policy
	// ResourceAccount is the account that owns the resource.
	ResourceAccount string
	// ResourcePolicyRequired: the resource policy must allow the request,
	// naming the principal or delegating to its account's identity
	// policies, which is how KMS key policies and role trust policies
	// work; IAM alone grants nothing on such a resource. Without it (S3),
	// within one account either kind of policy may allow.
	ResourcePolicyRequired bool
}

// Decision is the outcome of Authorize, with the reason in words.
type Decision struct {
	Allowed bool
	Reason  string
}

// Authorize decides a request the way AWS does for one principal and one
// resource policy: an explicit deny in any policy wins; otherwise the
// request is allowed when
//   - the resource policy allows it naming the principal (or everyone),
//     and, across accounts, an identity policy allows it too; or
//   - the resource policy allows it naming the principal's account, and an
//     identity policy allows it; or
//   - no resource policy is required, principal and resource share an
//     account, and an identity policy allows it.
func Authorize(r Request, a Access) (Decision, error) {
	id := Result{}
	for _, p := range a.Identity {
		res, err := p.Evaluate(r)
		if err != nil {
			return Decision{}, err
		}
		if res.Effect == Denied || (res.Effect == Allowed && id.Effect == NotAllowed) {
			id = res
			id.Sid = p.Name + " " + res.Sid
		}
		if res.Effect == Denied {
			break
		}
	}
	rp := Result{}
	rpName := "the resource policy"
	if a.Resource != nil {
		var err error
		if rp, err = a.Resource.Evaluate(r); err != nil {
			return Decision{}, err
		}
		rpName = a.Resource.Name
	}
	what := fmt.Sprintf("%s %s on %s", r.Principal, r.Action, r.Resource)
	switch {
	case id.Effect == Denied:
		return deny("%s: explicitly denied by %s", what, id.Sid), nil
	case rp.Effect == Denied:
		return deny("%s: explicitly denied by %s statement %s", what, rpName, rp.Sid), nil
	}
	sameAccount := r.Principal.ARN != "" && r.Principal.Account() == a.ResourceAccount
	if rp.Effect == Allowed {
		if !rp.ViaAccount && (sameAccount || r.Principal.ARN == "") {
			return allow("%s: allowed by %s statement %s", what, rpName, rp.Sid), nil
		}
		if id.Effect == Allowed && rp.ViaAccount {
			return allow("%s: allowed by %s, to which %s statement %s delegates (it names the account)", what, id.Sid, rpName, rp.Sid), nil
		}
		if id.Effect == Allowed {
			return allow("%s: allowed by %s and %s statement %s", what, id.Sid, rpName, rp.Sid), nil
		}
		if rp.ViaAccount {
			return deny("%s: %s statement %s delegates to the account's IAM policies, and none of the principal's allows it", what, rpName, rp.Sid), nil
		}
		return deny("%s: %s statement %s allows it, but across accounts the principal's own policies must allow it too, and none does", what, rpName, rp.Sid), nil
	}
	if a.ResourcePolicyRequired {
		why := "no statement of " + rpName + " allows it"
		if a.Resource == nil {
			why = "the resource has no policy"
		}
		var also string
		if id.Effect == Allowed {
			also = fmt.Sprintf(" (%s allows it, but IAM cannot grant what the resource policy does not)", id.Sid)
		}
		return deny("%s: %s%s", what, why, also), nil
	}
	if id.Effect == Allowed && sameAccount {
		return allow("%s: allowed by %s", what, id.Sid), nil
	}
	if id.Effect == Allowed {
		return deny("%s: %s allows it, but across accounts the resource policy must allow it too", what, id.Sid), nil
	}
	return deny("%s: no policy allows it (implicit deny)", what), nil
}

func allow(format string, args ...any) Decision {
	return Decision{Allowed: true, Reason: fmt.Sprintf(format, args...)}
}

func deny(format string, args ...any) Decision {
	return Decision{Allowed: false, Reason: fmt.Sprintf(format, args...)}
}

// ARNAccount returns the account field of an ARN ("" for an ARN without
// one, such as an S3 bucket's).
func ARNAccount(arn string) string {
	return arnAccount(arn)
}

// AccountRoot is the ARN of an account's root principal in a partition.
func AccountRoot(partition, account string) string {
	return "arn:" + partition + ":iam::" + account + ":root"
}
