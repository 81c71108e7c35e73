package awspolicy

import (
	"strings"
	"testing"
)

const (
	account = "111122223333"
	other   = "444455556666"
	role    = "arn:aws:iam::111122223333:role/app"
	admin   = "arn:aws:iam::111122223333:role/admin"
	outside = "arn:aws:iam::444455556666:role/app"
	keyARN  = "arn:aws:kms:eu-west-1:111122223333:key/k1"
	bucket  = "arn:aws:s3:::b"
)

func TestGlob(t *testing.T) {
	cases := []struct {
		pattern, value string
		want           bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"a*", "a", true},
		{"a*c", "abbbc", true},
		{"a*c", "abbbd", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"a?c", "abbc", false},
		{"*b*", "aaabaaa", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxcyyb", false},
		{"abc", "abcd", false},
		{"", "", true},
		{"**", "x", true},
	}
	for _, c := range cases {
		if got := glob(c.pattern, c.value); got != c.want {
			t.Errorf("glob(%q, %q) = %v, want %v", c.pattern, c.value, got, c.want)
		}
	}
}

func TestActionsAndResources(t *testing.T) {
	p := MustParse("identity", `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["kms:Create*","kms:Describe?ey"],"Resource":"*"},
		{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/init/*"},
		{"Effect":"Allow","NotAction":["s3:*","kms:*"],"Resource":"*"},
		{"Effect":"Allow","Action":"s3:GetObject","NotResource":"arn:aws:s3:::b/secret/*"}]}`)
	cases := []struct {
		action, resource string
		want             Effect
	}{
		{"kms:CreateAlias", keyARN, Allowed},
		{"KMS:createalias", keyARN, Allowed}, // actions are case-insensitive
		{"kms:DescribeKey", keyARN, Allowed},
		{"kms:DescribeKeys", keyARN, NotAllowed}, // ? is one character
		{"kms:ReplicateKey", keyARN, NotAllowed},
		{"s3:PutObject", bucket + "/init/x", Allowed},
		{"s3:PutObject", bucket + "/init/a/b", Allowed},
		{"s3:PutObject", bucket + "/INIT/x", NotAllowed}, // resources are not
		{"s3:PutObject", bucket + "/raft/x", NotAllowed},
		{"s3:PutObject", "arn:aws:s3:::bb/init/x", NotAllowed},
		{"sts:GetCallerIdentity", "*", Allowed}, // NotAction
		{"s3:DeleteObject", bucket + "/x", NotAllowed},
		{"s3:GetObject", bucket + "/public/x", Allowed}, // NotResource
		{"s3:GetObject", bucket + "/secret/x", NotAllowed},
	}
	for _, c := range cases {
		res, err := p.Evaluate(Request{Principal: Principal{ARN: role}, Action: c.action, Resource: c.resource})
		if err != nil {
			t.Fatal(err)
		}
		if res.Effect != c.want {
			t.Errorf("%s on %s: %v, want %v", c.action, c.resource, res.Effect, c.want)
		}
	}
}

func TestExplicitDenyWinsInAPolicy(t *testing.T) {
	p := MustParse("p", `{"Version":"2012-10-17","Statement":[
		{"Sid":"All","Effect":"Allow","Action":"s3:*","Resource":"*"},
		{"Sid":"NoDeletes","Effect":"Deny","Action":"s3:Delete*","Resource":"*"}]}`)
	res, err := p.Evaluate(Request{Action: "s3:DeleteObject", Resource: bucket + "/x"})
	if err != nil || res.Effect != Denied || res.Sid != "NoDeletes" {
		t.Errorf("%+v %v, want denied by NoDeletes", res, err)
	}
}

func TestConditions(t *testing.T) {
	cases := []struct {
		name      string
		condition string
		context   map[string]string
		want      bool
	}{
		{"StringEquals", `{"StringEquals":{"kms:EncryptionContext:purpose":"vault-init"}}`, map[string]string{"kms:EncryptionContext:purpose": "vault-init"}, true},
		{"StringEquals other value", `{"StringEquals":{"kms:EncryptionContext:purpose":"vault-init"}}`, map[string]string{"kms:EncryptionContext:purpose": "other"}, false},
		{"StringEquals values are case-sensitive", `{"StringEquals":{"k":"abc"}}`, map[string]string{"k": "ABC"}, false},
		{"key names are not", `{"StringEquals":{"kms:ViaService":"s3.eu-west-1.amazonaws.com"}}`, map[string]string{"KMS:VIASERVICE": "s3.eu-west-1.amazonaws.com"}, true},
		{"StringEquals missing key", `{"StringEquals":{"k":"v"}}`, nil, false},
		{"StringEquals any of a list", `{"StringEquals":{"k":["a","b"]}}`, map[string]string{"k": "b"}, true},
		{"StringEqualsIgnoreCase", `{"StringEqualsIgnoreCase":{"k":"abc"}}`, map[string]string{"k": "ABC"}, true},
		{"StringNotEquals other value", `{"StringNotEquals":{"k":"aws:kms"}}`, map[string]string{"k": "AES256"}, true},
		{"StringNotEquals same value", `{"StringNotEquals":{"k":"aws:kms"}}`, map[string]string{"k": "aws:kms"}, false},
		{"StringNotEquals none of a list", `{"StringNotEquals":{"k":["a","b"]}}`, map[string]string{"k": "b"}, false},
		{"StringNotEquals missing key holds", `{"StringNotEquals":{"k":"v"}}`, nil, true},
		{"StringLike", `{"StringLike":{"s3:prefix":"raft/*"}}`, map[string]string{"s3:prefix": "raft/2026"}, true},
		{"StringLike no match", `{"StringLike":{"s3:prefix":"raft/*"}}`, map[string]string{"s3:prefix": "init/x"}, false},
		{"StringNotLike", `{"StringNotLike":{"k":"a*"}}`, map[string]string{"k": "abc"}, false},
		{"ArnLike", `{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::b*"}}`, map[string]string{"aws:SourceArn": "arn:aws:s3:::bucket"}, true},
		{"ArnLike stays in its part", `{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/x"}}`, map[string]string{"aws:PrincipalArn": "arn:aws:iam::1:2:role/x"}, false},
		{"ArnEquals", `{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/app"}}`, map[string]string{"aws:PrincipalArn": role}, true},
		{"ArnNotEquals missing key holds", `{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/app"}}`, nil, true},
		{"Bool", `{"Bool":{"aws:SecureTransport":"false"}}`, map[string]string{"aws:SecureTransport": "false"}, true},
		{"Bool JSON boolean", `{"Bool":{"aws:SecureTransport":false}}`, map[string]string{"aws:SecureTransport": "false"}, true},
		{"Bool other", `{"Bool":{"aws:SecureTransport":"false"}}`, map[string]string{"aws:SecureTransport": "true"}, false},
		{"Bool missing key", `{"Bool":{"aws:SecureTransport":"false"}}`, nil, false},
		{"BoolIfExists missing key", `{"BoolIfExists":{"aws:SecureTransport":"false"}}`, nil, true},
		{"StringEqualsIfExists present", `{"StringEqualsIfExists":{"k":"v"}}`, map[string]string{"k": "w"}, false},
		{"NumericLessThan", `{"NumericLessThan":{"s3:TlsVersion":"1.2"}}`, map[string]string{"s3:TlsVersion": "1.1"}, true},
		{"NumericLessThan equal", `{"NumericLessThan":{"s3:TlsVersion":1.2}}`, map[string]string{"s3:TlsVersion": "1.2"}, false},
		{"NumericLessThan missing key", `{"NumericLessThan":{"s3:TlsVersion":"1.2"}}`, nil, false},
		{"NumericGreaterThanEquals", `{"NumericGreaterThanEquals":{"n":"3"}}`, map[string]string{"n": "3"}, true},
		{"NumericNotEquals", `{"NumericNotEquals":{"n":"3"}}`, map[string]string{"n": "3.0"}, false},
		{"Null true: absent", `{"Null":{"k":"true"}}`, nil, true},
		{"Null true: present", `{"Null":{"k":"true"}}`, map[string]string{"k": ""}, false},
		{"Null false: present", `{"Null":{"k":"false"}}`, map[string]string{"k": "x"}, true},
		{"Null false: absent", `{"Null":{"k":"false"}}`, nil, false},
		{"keys are ANDed", `{"Null":{"a":"false","b":"true"}}`, map[string]string{"a": "x", "b": "y"}, false},
		{"operators are ANDed", `{"StringNotEquals":{"a":"aws:kms"},"Null":{"a":"false"}}`, nil, false},
		{"operators are ANDed, all hold", `{"StringNotEquals":{"a":"aws:kms"},"Null":{"a":"false"}}`, map[string]string{"a": "AES256"}, true},
	}
	for _, c := range cases {
		p, err := Parse(c.name, `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":`+c.condition+`}}`)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		res, err := p.Evaluate(Request{Action: "s3:GetObject", Resource: bucket, Context: c.context})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := res.Effect == Allowed; got != c.want {
			t.Errorf("%s with %v: holds=%v, want %v", c.name, c.context, got, c.want)
		}
	}
}

func TestNumericConditionOnANonNumberIsAnError(t *testing.T) {
	p := MustParse("p", `{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NumericLessThan":{"n":"1.2"}}}}`)
	if _, err := p.Evaluate(Request{Action: "s3:GetObject", Resource: bucket, Context: map[string]string{"n": "TLSv1.2"}}); err == nil || !strings.Contains(err.Error(), "TLSv1.2") {
		t.Errorf("err = %v, want one naming the value", err)
	}
}

func TestParseRejectsWhatIsNotModelled(t *testing.T) {
	cases := map[string]string{
		"NotPrincipal":         `{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotPrincipal":{"AWS":"x"},"Action":"*","Resource":"*"}}`,
		"ForAnyValue":          `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAnyValue:StringLike":{"k":"v"}}}}`,
		"IpAddress":            `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}}`,
		"policy variables":     `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${aws:username}/*"}}`,
		"Version":              `{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`,
		"Effect":               `{"Version":"2012-10-17","Statement":{"Effect":"allow","Action":"*","Resource":"*"}}`,
		"no Action":            `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Resource":"*"}}`,
		"Action and NotAction": `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","NotAction":"s3:*","Resource":"*"}}`,
		"empty Statement":      `{"Version":"2012-10-17","Statement":[]}`,
		"unknown top level":    `{"Version":"2012-10-17","Statements":[]}`,
		"principal kind":       `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"CanonicalUser":"x"},"Action":"*","Resource":"*"}}`,
		"string principal":     `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"111122223333","Action":"*","Resource":"*"}}`,
		"Null value":           `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Null":{"k":"yes"}}}}`,
	}
	for name, doc := range cases {
		if _, err := Parse(name, doc); err == nil {
			t.Errorf("%s: parsed; want an error", name)
		}
	}
}

// keyPolicy is AWS's default shape: the account root administers (IAM
// decides who), one role uses the key directly.
var keyPolicy = MustParse("key policy", `{"Version":"2012-10-17","Statement":[
	{"Sid":"Admins","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["kms:Describe*","kms:Put*"],"Resource":"*"},
	{"Sid":"AppUses","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:role/app"]},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*"}]}`)

var adminPolicy = MustParse("admin policy", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`)

func decide(t *testing.T, r Request, a Access) Decision {
	t.Helper()
	d, err := Authorize(r, a)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestKMSKeyPolicyMustAllow(t *testing.T) {
	key := func(identity ...Policy) Access {
		return Access{Identity: identity, Resource: &keyPolicy, ResourceAccount: account, ResourcePolicyRequired: true}
	}
	cases := []struct {
		name   string
		r      Request
		access Access
		want   bool
		reason string
	}{
		{"the key policy delegates to IAM, and IAM allows", Request{Principal: Principal{ARN: admin}, Action: "kms:PutKeyPolicy", Resource: keyARN}, key(adminPolicy), true, "delegat"},
		{"the key policy delegates, IAM does not allow", Request{Principal: Principal{ARN: admin}, Action: "kms:PutKeyPolicy", Resource: keyARN}, key(), false, "none of the principal's allows it"},
		{"IAM allows what the key policy does not", Request{Principal: Principal{ARN: admin}, Action: "kms:ReplicateKey", Resource: keyARN}, key(adminPolicy), false, "IAM cannot grant"},
		{"an administrator cannot decrypt", Request{Principal: Principal{ARN: admin}, Action: "kms:Decrypt", Resource: keyARN}, key(adminPolicy), false, "no statement of key policy"},
		{"the key policy names the role: no IAM policy needed", Request{Principal: Principal{ARN: role}, Action: "kms:Decrypt", Resource: keyARN}, key(), true, "AppUses"},
		{"another account's role named nowhere", Request{Principal: Principal{ARN: outside}, Action: "kms:Decrypt", Resource: keyARN}, Access{Identity: []Policy{adminPolicy}, Resource: &keyPolicy, ResourceAccount: account, ResourcePolicyRequired: true}, false, "no statement"},
		{"no key policy at all", Request{Principal: Principal{ARN: admin}, Action: "kms:Decrypt", Resource: keyARN}, Access{Identity: []Policy{adminPolicy}, ResourceAccount: account, ResourcePolicyRequired: true}, false, "has no policy"},
	}
	for _, c := range cases {
		d := decide(t, c.r, c.access)
		if d.Allowed != c.want || !strings.Contains(d.Reason, c.reason) {
			t.Errorf("%s: %+v, want allowed=%v with a reason containing %q", c.name, d, c.want, c.reason)
		}
	}
}

func TestAccountIDPrincipalIsTheRoot(t *testing.T) {
	p := MustParse("key policy", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"}}`)
	d := decide(t, Request{Principal: Principal{ARN: admin}, Action: "kms:Decrypt", Resource: keyARN},
		Access{Resource: &p, ResourceAccount: account, ResourcePolicyRequired: true})
	if d.Allowed {
		t.Errorf("an account principal alone allowed: %s", d.Reason)
	}
	d = decide(t, Request{Principal: Principal{ARN: admin}, Action: "kms:Decrypt", Resource: keyARN},
		Access{Identity: []Policy{adminPolicy}, Resource: &p, ResourceAccount: account, ResourcePolicyRequired: true})
	if !d.Allowed {
		t.Errorf("account principal and IAM: %s", d.Reason)
	}
}

// bucketPolicy denies plain HTTP to everyone and lets another account's
// role read.
var bucketPolicy = MustParse("bucket policy", `{"Version":"2012-10-17","Statement":[
	{"Sid":"TLSOnly","Effect":"Deny","Principal":{"AWS":"*"},"Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}},
	{"Sid":"PartnerReads","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:role/app"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}`)

var writeObjects = MustParse("role policy", `{"Version":"2012-10-17","Statement":{"Sid":"Write","Effect":"Allow","Action":["s3:PutObject","s3:GetObject"],"Resource":"arn:aws:s3:::b/*"}}`)

func TestS3SameAccountEitherPolicyAllows(t *testing.T) {
	tls := map[string]string{"aws:SecureTransport": "true"}
	put := Request{Principal: Principal{ARN: role}, Action: "s3:PutObject", Resource: bucket + "/x", Context: tls}
	if d := decide(t, put, Access{Identity: []Policy{writeObjects}, Resource: &bucketPolicy, ResourceAccount: account}); !d.Allowed {
		t.Errorf("identity policy alone, same account: %s", d.Reason)
	}
	if d := decide(t, put, Access{Resource: &bucketPolicy, ResourceAccount: account}); d.Allowed {
		t.Errorf("nothing allows, yet: %s", d.Reason)
	}
	plain := put
	plain.Context = map[string]string{"aws:SecureTransport": "false"}
	if d := decide(t, plain, Access{Identity: []Policy{adminPolicy}, Resource: &bucketPolicy, ResourceAccount: account}); d.Allowed || !strings.Contains(d.Reason, "TLSOnly") {
		t.Errorf("the bucket's explicit deny must beat an administrator's allow: %+v", d)
	}
	own := MustParse("bucket policy", `{"Version":"2012-10-17","Statement":{"Sid":"AppReads","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/app"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}`)
	get := Request{Principal: Principal{ARN: role}, Action: "s3:GetObject", Resource: bucket + "/x", Context: tls}
	if d := decide(t, get, Access{Resource: &own, ResourceAccount: account}); !d.Allowed {
		t.Errorf("bucket policy alone, same account: %s", d.Reason)
	}
	denyAll := MustParse("role policy", `{"Version":"2012-10-17","Statement":{"Sid":"Nothing","Effect":"Deny","Action":"*","Resource":"*"}}`)
	if d := decide(t, get, Access{Identity: []Policy{denyAll}, Resource: &own, ResourceAccount: account}); d.Allowed || !strings.Contains(d.Reason, "Nothing") {
		t.Errorf("an identity deny must beat the bucket's allow: %+v", d)
	}
}

func TestCrossAccountNeedsBoth(t *testing.T) {
	tls := map[string]string{"aws:SecureTransport": "true"}
	get := Request{Principal: Principal{ARN: outside}, Action: "s3:GetObject", Resource: bucket + "/x", Context: tls}
	if d := decide(t, get, Access{Resource: &bucketPolicy, ResourceAccount: account}); d.Allowed {
		t.Errorf("bucket policy alone across accounts: %s", d.Reason)
	}
	if d := decide(t, get, Access{Identity: []Policy{adminPolicy}, Resource: &bucketPolicy, ResourceAccount: account}); !d.Allowed {
		t.Errorf("both allow across accounts: %s", d.Reason)
	}
	put := get
	put.Action = "s3:PutObject"
	if d := decide(t, put, Access{Identity: []Policy{adminPolicy}, Resource: &bucketPolicy, ResourceAccount: account}); d.Allowed {
		t.Errorf("identity policy alone across accounts: %s", d.Reason)
	}
	// A key policy naming another account's root delegates to that
	// account's IAM policies.
	shared := MustParse("key policy", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:Decrypt","Resource":"*"}}`)
	dec := Request{Principal: Principal{ARN: outside}, Action: "kms:Decrypt", Resource: keyARN}
	if d := decide(t, dec, Access{Resource: &shared, ResourceAccount: account, ResourcePolicyRequired: true}); d.Allowed {
		t.Errorf("delegation without the other account's IAM: %s", d.Reason)
	}
	if d := decide(t, dec, Access{Identity: []Policy{adminPolicy}, Resource: &shared, ResourceAccount: account, ResourcePolicyRequired: true}); !d.Allowed {
		t.Errorf("delegation with the other account's IAM: %s", d.Reason)
	}
	if _, err := Authorize(dec, Access{ResourceAccount: other}); err != nil {
		t.Error(err)
	}
}

func TestServiceAndFederatedPrincipals(t *testing.T) {
	trust := MustParse("trust policy", `{"Version":"2012-10-17","Statement":[
		{"Sid":"S3","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:SourceAccount":"111122223333"}}},
		{"Sid":"IRSA","Effect":"Allow","Principal":{"Federated":"arn:aws:iam::111122223333:oidc-provider/oidc.example/id/X"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"oidc.example/id/X:sub":"system:serviceaccount:ns:sa"}}}]}`)
	roleARN := "arn:aws:iam::111122223333:role/replication"
	access := Access{Resource: &trust, ResourceAccount: account, ResourcePolicyRequired: true}
	cases := []struct {
		name string
		r    Request
		want bool
	}{
		{"S3 for this account", Request{Principal: Principal{Service: "s3.amazonaws.com"}, Action: "sts:AssumeRole", Resource: roleARN, Context: map[string]string{"aws:SourceAccount": account}}, true},
		{"S3 for another account", Request{Principal: Principal{Service: "s3.amazonaws.com"}, Action: "sts:AssumeRole", Resource: roleARN, Context: map[string]string{"aws:SourceAccount": other}}, false},
		{"another service", Request{Principal: Principal{Service: "ec2.amazonaws.com"}, Action: "sts:AssumeRole", Resource: roleARN, Context: map[string]string{"aws:SourceAccount": account}}, false},
		{"an IAM role of the account", Request{Principal: Principal{ARN: admin}, Action: "sts:AssumeRole", Resource: roleARN}, false},
		{"the service account", Request{Principal: Principal{Federated: "arn:aws:iam::111122223333:oidc-provider/oidc.example/id/X"}, Action: "sts:AssumeRoleWithWebIdentity", Resource: roleARN, Context: map[string]string{"oidc.example/id/X:sub": "system:serviceaccount:ns:sa"}}, true},
		{"another service account", Request{Principal: Principal{Federated: "arn:aws:iam::111122223333:oidc-provider/oidc.example/id/X"}, Action: "sts:AssumeRoleWithWebIdentity", Resource: roleARN, Context: map[string]string{"oidc.example/id/X:sub": "system:serviceaccount:ns:other"}}, false},
	}
	for _, c := range cases {
		if d := decide(t, c.r, access); d.Allowed != c.want {
			t.Errorf("%s: %+v, want allowed=%v", c.name, d, c.want)
		}
	}
	everyone := MustParse("p", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}}`)
	if d := decide(t, Request{Principal: Principal{ARN: outside}, Action: "s3:GetObject", Resource: bucket + "/x"}, Access{Identity: []Policy{adminPolicy}, Resource: &everyone, ResourceAccount: account}); !d.Allowed {
		t.Errorf("Principal * with the caller's own IAM: %s", d.Reason)
	}
}
