//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// awsIdentity is a session of an assumed IAM role: the credentials a
// person's CLI signs with, and who STS says they are.
type awsIdentity struct {
	account, role, session string
	// roleID is the role's unique ID (AROA...), which STS reports in UserId.
	roleID string
	creds  aws.Credentials
}

// sessionARN is what GetCallerIdentity answers for a role session.
func (id awsIdentity) sessionARN() string {
	return fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", id.account, id.role, id.session)
}

// env are the CLI's credentials, and nothing else from AWS's files or the
// instance metadata service.
func (id awsIdentity) env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + id.creds.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + id.creds.SecretAccessKey,
		"AWS_SESSION_TOKEN=" + id.creds.SessionToken,
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true",
	}
}

// newAWSIdentity makes a session of role in account with fresh credentials.
func newAWSIdentity(t *testing.T, account, role string) awsIdentity {
	return awsIdentity{
		account: account, role: role, session: "person-" + randomHex(t, 4),
		roleID: "AROA" + strings.ToUpper(randomHex(t, 8)),
		creds: aws.Credentials{
			AccessKeyID:     "ASIA" + strings.ToUpper(randomHex(t, 8)),
			SecretAccessKey: randomHex(t, 20),
			SessionToken:    randomHex(t, 32),
		},
	}
}

// stsStandIn answers GetCallerIdentity as a regional STS endpoint does: it
// accepts only requests addressed to sts.<region>.amazonaws.com, signed
// (SigV4, service sts, that region) with the credentials of a session it
// knows, within 15 minutes of their date; anything else is refused with
// STS's own error codes. Vault's AWS auth method forwards the request a
// client signed, so the client must sign exactly what AWS would check.
type stsStandIn struct {
	t      *testing.T
	srv    *httptest.Server
	region string
	// sessions by access key ID.
	sessions map[string]awsIdentity
}

// newSTSStandIn serves GetCallerIdentity for region's endpoint.
func newSTSStandIn(t *testing.T, region string, sessions ...awsIdentity) *stsStandIn {
	s := &stsStandIn{t: t, region: region, sessions: map[string]awsIdentity{}}
	for _, id := range sessions {
		s.sessions[id.creds.AccessKeyID] = id
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// stsError is STS's error document.
type stsError struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Type    string   `xml:"Error>Type"`
	Code    string   `xml:"Error>Code"`
	Message string   `xml:"Error>Message"`
}

// callerIdentity is GetCallerIdentity's answer.
type callerIdentity struct {
	XMLName   xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ GetCallerIdentityResponse"`
	Arn       string   `xml:"GetCallerIdentityResult>Arn"`
	UserID    string   `xml:"GetCallerIdentityResult>UserId"`
	Account   string   `xml:"GetCallerIdentityResult>Account"`
	RequestID string   `xml:"ResponseMetadata>RequestId"`
}

func (s *stsStandIn) serve(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", "text/xml")
	id, code, err := s.authenticate(req)
	if err != nil {
		s.t.Logf("stand-in STS refused a request: %s: %v", code, err)
		w.WriteHeader(http.StatusForbidden)
		_ = xml.NewEncoder(w).Encode(stsError{Type: "Sender", Code: code, Message: err.Error()})
		return
	}
	_ = xml.NewEncoder(w).Encode(callerIdentity{
		Arn: id.sessionARN(), UserID: id.roleID + ":" + id.session, Account: id.account, RequestID: randomHex(s.t, 8),
	})
}

// authenticate checks the request as STS would and returns whose session
// signed it, or STS's error code and why.
func (s *stsStandIn) authenticate(req *http.Request) (awsIdentity, string, error) {
	host := "sts." + s.region + ".amazonaws.com"
	if req.Host != host {
		return awsIdentity{}, "SignatureDoesNotMatch", fmt.Errorf("addressed to %q; this endpoint is %s", req.Host, host)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return awsIdentity{}, "InvalidRequest", err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || req.Method != http.MethodPost || form.Get("Action") != "GetCallerIdentity" {
		return awsIdentity{}, "InvalidAction", fmt.Errorf("%s %s: want POST Action=GetCallerIdentity", req.Method, body)
	}
	auth := req.Header.Get("Authorization")
	credential := between(auth, "Credential=", ",")
	scope := strings.Split(credential, "/") // key/date/region/service/aws4_request
	if len(scope) != 5 {
		return awsIdentity{}, "IncompleteSignature", fmt.Errorf("authorization %q", auth)
	}
	id, ok := s.sessions[scope[0]]
	if !ok {
		return awsIdentity{}, "InvalidClientTokenId", fmt.Errorf("unknown access key %s", scope[0])
	}
	if scope[2] != s.region || scope[3] != "sts" {
		return awsIdentity{}, "SignatureDoesNotMatch", fmt.Errorf("signed for %s/%s; this endpoint is sts in %s", scope[3], scope[2], s.region)
	}
	signed, err := time.Parse("20060102T150405Z", req.Header.Get("X-Amz-Date"))
	if err != nil || time.Since(signed).Abs() > 15*time.Minute {
		return awsIdentity{}, "SignatureDoesNotMatch", fmt.Errorf("X-Amz-Date %q is not within 15 minutes", req.Header.Get("X-Amz-Date"))
	}
	// Sign the same request again, over the headers the client signed,
	// with the session's secret: the signatures match only if the client
	// held it and nothing signed was changed on the way.
	// STS normalises the path before it checks the signature, as SigV4
	// prescribes for every service but S3 (Vault forwards "/" as "//").
	uri := *req.URL
	uri.Scheme, uri.Host, uri.Path, uri.RawPath = "https", host, path.Clean("/"+req.URL.Path), ""
	again := httptest.NewRequest(req.Method, uri.String(), bytes.NewReader(body)) // signed, never sent
	for _, h := range strings.Split(between(auth, "SignedHeaders=", ","), ";") {
		switch h {
		case "host", "content-length":
		default:
			again.Header[http.CanonicalHeaderKey(h)] = req.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), id.creds, again, hex.EncodeToString(sum[:]), "sts", s.region, signed); err != nil {
		return awsIdentity{}, "InvalidRequest", err
	}
	if got, want := auth, again.Header.Get("Authorization"); got != want {
		return awsIdentity{}, "SignatureDoesNotMatch", fmt.Errorf("signature mismatch:\n got %s\nwant %s", got, want)
	}
	return id, "", nil
}

// between is the part of s after the first start, up to end or the end.
func between(s, start, end string) string {
	_, after, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	before, _, _ := strings.Cut(after, end)
	return before
}
