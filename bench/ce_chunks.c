// Cross-entropy chunk size against the lm_head products' rate: the two products of chunked cross-entropy (logits
// z (C x V) = x W^T, then dx = dz W) over N tokens in chunks of C rows, cut over 2 threads the way Sloth's BLAS.sgemm
// cuts them (the longer side in halves, single-threaded OpenBLAS each), for two chunk sizes alternated in 12 pairs.
// Prints each size's best time and the median (and range) of the paired time ratios, which a shared host's drifting
// speed disturbs less than either best. V 49152, D 576 (the bench model's lm_head).
// Build: cc -O2 bench/ce_chunks.c -o /tmp/ce_chunks -ldl -lpthread
// Run:   OPENBLAS_CORETYPE=SkylakeX /tmp/ce_chunks TOKENS C1 C2      (e.g. 2048 256 1024)
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
typedef void (*sgemm_t)(int,int,int,int,int,int,float,const float*,int,const float*,int,float,float*,int);
static sgemm_t sg;
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
typedef struct {int tb,m,n,k; const float*a;int lda;const float*b;int ldb;float beta;float*c;int ldc;} job;
static void *runj(void*p){job*j=p; sg(101,111,j->tb?112:111,j->m,j->n,j->k,1,j->a,j->lda,j->b,j->ldb,j->beta,j->c,j->ldc);return 0;}
static int V=49152,D=576,N; static float *W,*X,*Z,*DX;
static double pass(int C){
  double t0=now();
  for(int s=0;s<N;s+=C){ job j[2]; pthread_t th;
    for(int p=0;p<2;p++) j[p]=(job){1,C,V/2,D,X+s*D,D,W+(long)p*(V/2)*D,D,0,Z+p*(V/2),V};
    pthread_create(&th,0,runj,&j[1]); runj(&j[0]); pthread_join(th,0);
    if (C <= D) { for(int p=0;p<2;p++) j[p]=(job){0,C,D/2,V,Z,V,W+p*(D/2),D,0,DX+s*D+p*(D/2),D}; }
    else { for(int p=0;p<2;p++) j[p]=(job){0,C/2,D,V,Z+(long)p*(C/2)*V,V,W,D,0,DX+(s+p*C/2)*D,D}; }
    pthread_create(&th,0,runj,&j[1]); runj(&j[0]); pthread_join(th,0);
  }
  return now()-t0;
}
int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
 void*h=dlopen("libopenblas.so.0",RTLD_NOW); sg=dlsym(h,"cblas_sgemm"); void(*ot)(int)=dlsym(h,"openblas_set_num_threads"); ot(1);
 if(argc<4){fprintf(stderr,"usage: ce_chunks TOKENS C1 C2\n");return 2;}
 N=atoi(argv[1]); int C1=atoi(argv[2]),C2=atoi(argv[3]);
 W=malloc(4L*V*D);X=malloc(4L*N*D);Z=malloc(4L*(C1>C2?C1:C2)*V);DX=malloc(4L*N*D);
 for(long i=0;i<(long)V*D;i++)W[i]=1e-3f*(i%7); for(long i=0;i<(long)N*D;i++)X[i]=1e-3f*(i%13); for(long i=0;i<(long)(C1>C2?C1:C2)*V;i++)Z[i]=1e-4f*(i%11);
 pass(C1);pass(C2);
 double r[12],b1=1e9,b2=1e9;
 for(int i=0;i<12;i++){double a=pass(C1),b=pass(C2); r[i]=a/b; if(a<b1)b1=a; if(b<b2)b2=b;}
 qsort(r,12,sizeof(double),cmp);
 double f=2.0*2*N*(double)V*D;
 printf("N %d: C %d best %.3f s (%.0f GFLOP/s), C %d best %.3f s (%.0f GFLOP/s); time ratio C%d/C%d median %.3f (range %.3f-%.3f)\n",N,C1,b1,f/b1/1e9,C2,b2,f/b2/1e9,C1,C2,(r[5]+r[6])/2,r[0],r[11]);
}
