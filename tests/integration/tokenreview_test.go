//go:build integration

package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// apiServerAudience is the audience of a projected token that names none:
// the API server's own.
const apiServerAudience = "https://kubernetes.default.svc"

// serviceAccount is who a minted token stands for.
type serviceAccount struct {
	namespace, name, uid string
	audiences            []string
}

// tokenReviewer stands in for the Kubernetes API server's TokenReview
// endpoint, which Vault's Kubernetes auth method asks whether a service
// account token is valid. It answers for the tokens it minted, as an API
// server answers for the tokens it issued, and only to the reviewer it
// knows.
type tokenReviewer struct {
	srv *httptest.Server
	key *ecdsa.PrivateKey
	// reviewerToken is token_reviewer_jwt: the bearer Vault calls with.
	reviewerToken string
	// caFile holds the server's CA certificate (kubernetes_ca_cert).
	caFile string

	mu      sync.Mutex
	tokens  map[string]serviceAccount
	reviews atomic.Int64
}

// newTokenReviewer starts the stand-in on loopback over TLS.
func newTokenReviewer(t *testing.T) *tokenReviewer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tr := &tokenReviewer{key: key, reviewerToken: randomHex(t, 24), tokens: map[string]serviceAccount{}}
	tr.srv = httptest.NewUnstartedServer(http.HandlerFunc(tr.serve))
	tr.srv.StartTLS()
	t.Cleanup(tr.srv.Close)
	tr.caFile = filepath.Join(t.TempDir(), "apiserver-ca.crt")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tr.srv.Certificate().Raw})
	if err := os.WriteFile(tr.caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	return tr
}

// url is kubernetes_host.
func (tr *tokenReviewer) url() string { return tr.srv.URL }

// mint issues a service account token shaped like a projected one, valid
// for ten minutes.
func (tr *tokenReviewer) mint(t *testing.T, sa serviceAccount) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{
		"aud": sa.audiences,
		"exp": now.Add(10 * time.Minute).Unix(),
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"iss": "https://kubernetes.default.svc.cluster.local",
		"sub": "system:serviceaccount:" + sa.namespace + ":" + sa.name,
		"kubernetes.io": map[string]any{
			"namespace":      sa.namespace,
			"serviceaccount": map[string]any{"name": sa.name, "uid": sa.uid},
		},
	}
	token := tr.sign(t, claims)
	tr.mu.Lock()
	tr.tokens[token] = sa
	tr.mu.Unlock()
	return token
}

// sign encodes claims as an ES256 JWS.
func (tr *tokenReviewer) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signed := enc(map[string]string{"alg": "ES256", "typ": "JWT", "kid": "integration"}) + "." + enc(claims)
	digest := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, tr.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// serve answers POST /apis/authentication.k8s.io/v1/tokenreviews as the API
// server does: 401 for an unknown caller, and a TokenReview whose status
// authenticates the token only if it was minted here for one of the
// requested audiences.
func (tr *tokenReviewer) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" {
		http.NotFound(w, req)
		return
	}
	if req.Header.Get("Authorization") != "Bearer "+tr.reviewerToken {
		writeJSON(w, http.StatusUnauthorized, metav1.Status{
			TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status:   metav1.StatusFailure, Reason: metav1.StatusReasonUnauthorized, Code: http.StatusUnauthorized,
		})
		return
	}
	var review authv1.TokenReview
	if err := json.NewDecoder(req.Body).Decode(&review); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	tr.reviews.Add(1)
	tr.mu.Lock()
	sa, known := tr.tokens[review.Spec.Token]
	tr.mu.Unlock()

	review.TypeMeta = metav1.TypeMeta{Kind: "TokenReview", APIVersion: "authentication.k8s.io/v1"}
	wanted := review.Spec.Audiences
	if len(wanted) == 0 {
		wanted = []string{apiServerAudience}
	}
	var granted []string
	for _, aud := range wanted {
		if slices.Contains(sa.audiences, aud) {
			granted = append(granted, aud)
		}
	}
	switch {
	case !known:
		review.Status = authv1.TokenReviewStatus{Error: "invalid bearer token"}
	case len(granted) == 0:
		review.Status = authv1.TokenReviewStatus{Error: "token audiences are invalid for the target audiences"}
	default:
		review.Status = authv1.TokenReviewStatus{
			Authenticated: true,
			Audiences:     granted,
			User: authv1.UserInfo{
				Username: "system:serviceaccount:" + sa.namespace + ":" + sa.name,
				UID:      sa.uid,
				Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + sa.namespace, "system:authenticated"},
			},
		}
	}
	writeJSON(w, http.StatusCreated, review)
}

// writeJSON writes v as a JSON answer with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
